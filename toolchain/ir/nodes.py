"""IR nodes: frozen, self-checking dataclasses with numpy fields named after NIR's equations.

Every node carries its ``name`` (the key it has in its :class:`~toolchain.ir.graph.Graph`), so that any error can
name it. Parameters are float64 arrays broadcast to the node's full shape (the NIR loader resolves scalar and
``[]``-shaped parameters before building nodes). Times are in seconds (continuous time, as in NIR); a graph's
``dt`` says at which step it is simulated and compiled.

Neuron equations (continuous time, NIR 1.0; ``I`` is the node's input):

* ``LIF``:      tau · dv/dt = (v_leak − v) + r · I;                     spike when v > v_threshold
* ``CubaLIF``:  tau_syn · di/dt = −i + w_in · I;  tau_mem · dv/dt = (v_leak − v) + r · i;  spike when v > v_threshold
* ``IF``:       dv/dt = r · I;                                          spike when v > v_threshold
* ``LI``:       tau · dv/dt = (v_leak − v) + r · I                      (no spikes; a readout)
* ``CubaLI``:   as CubaLIF without spikes
* ``Integrator`` (NIR ``I``): dv/dt = r · I
* ``Threshold``: s = H(I − threshold)

After a spike, ``reset_mode == "zero"`` sets v to ``v_reset``; ``"subtract"`` subtracts ``v_threshold`` from v.
Units: tau in s, v/v_leak/v_threshold/v_reset in the network's (arbitrary) voltage unit, r in voltage per input
unit, w_in dimensionless.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Dict, Tuple

import numpy as np

from ..errors import GraphError
from .storage import Dense, WeightStorage, as_storage

__all__ = [
    "Node", "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
    "Flatten", "LIF", "CubaLIF", "IF", "LI", "CubaLI", "Integrator", "Threshold", "Delay",
    "NEURON_TYPES", "SPIKING_TYPES", "SYNAPSE_TYPES", "RESET_MODES",
]

RESET_MODES = ("zero", "subtract")
Shape = Tuple[int, ...]


def _shape(value: Any, node: str, fname: str) -> Shape:
    try:
        shape = tuple(int(s) for s in np.atleast_1d(np.asarray(value, dtype=np.int64)).tolist())
    except (TypeError, ValueError) as exc:
        raise GraphError(f"not a shape: {value!r}", node=node, field=fname) from exc
    if any(s <= 0 for s in shape):
        raise GraphError(f"shape must be positive, got {shape}", node=node, field=fname)
    return shape


def _param(value: Any, shape: Shape, node: str, fname: str, *, positive: bool = False,
           nonneg: bool = False) -> np.ndarray:
    """Convert a parameter to a read-only float64 array of ``shape`` (scalars broadcast) and check it."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphError(f"not numeric: {value!r}", node=node, field=fname) from exc
    if arr.shape != shape:
        if arr.size == 1:
            arr = np.full(shape, float(arr.reshape(())))
        else:
            try:
                arr = np.broadcast_to(arr, shape).copy()
            except ValueError:
                raise GraphError(f"has shape {arr.shape}, expected {shape} (or a scalar)", node=node,
                                 field=fname) from None
    if not np.all(np.isfinite(arr)):
        raise GraphError("contains NaN or infinite values", node=node, field=fname)
    if positive and np.any(arr <= 0):
        raise GraphError(f"must be > 0, smallest value is {arr.min():g}", node=node, field=fname)
    if nonneg and np.any(arr < 0):
        raise GraphError(f"must be >= 0, smallest value is {arr.min():g}", node=node, field=fname)
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


def _pair(value: Any, node: str, fname: str, *, minimum: int = 0) -> Tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value, dtype=np.int64))
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or np.any(arr < minimum):
        raise GraphError(f"expected one or two integers >= {minimum}, got {value!r}", node=node, field=fname)
    return tuple(int(x) for x in arr)


@dataclass(frozen=True, eq=False)
class Node:
    """Base class of all IR nodes."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise GraphError(f"node name must be a non-empty string, got {self.name!r}", field="name")

    # -- interface ---------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The NIR type name of this node (``"LIF"``, ``"Affine"``, ...)."""
        return type(self).__name__

    @property
    def in_shape(self) -> Shape:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def out_shape(self) -> Shape:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def is_neuron(self) -> bool:
        """True for nodes with state that evolves in time (neurons, integrators)."""
        return isinstance(self, NEURON_TYPES)

    @property
    def is_spiking(self) -> bool:
        """True for nodes that emit spikes."""
        return isinstance(self, SPIKING_TYPES)

    def params(self) -> Dict[str, Any]:
        """All fields except ``name``, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def replace(self, **changes: Any) -> "Node":
        """A copy with some fields changed (checked again)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(changes)
        return type(self)(**kw)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b)):
                    return False
            elif a != b:
                return False
        return True

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    def __repr__(self) -> str:
        return f"{self.kind}({self.name!r}, {self.in_shape}->{self.out_shape})"


# ------------------------------------------------------------------------------------------------ I/O nodes
@dataclass(frozen=True, eq=False, repr=False)
class Input(Node):
    """Graph input. ``shape``: the shape of one sample at one time step (no batch or time dimension)."""

    shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "shape", _shape(self.shape, self.name, "shape"))

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def out_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False, repr=False)
class Output(Node):
    """Graph output. ``shape``: the shape of one sample at one time step."""

    shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "shape", _shape(self.shape, self.name, "shape"))

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def out_shape(self) -> Shape:
        return self.shape


# ------------------------------------------------------------------------------------------ synapse nodes
@dataclass(frozen=True, eq=False, repr=False)
class Linear(Node):
    """y = W x. ``weight``: storage of shape (n_out, n_in)."""

    weight: WeightStorage = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weight is None:
            raise GraphError("missing", node=self.name, field="weight")
        try:
            w = as_storage(self.weight)
        except GraphError as exc:
            raise GraphError(exc.message, node=self.name, field="weight") from None
        dense_vals = w.values if isinstance(w, Dense) else w.to_dense()
        if not np.all(np.isfinite(dense_vals)):
            raise GraphError("contains NaN or infinite values", node=self.name, field="weight")
        object.__setattr__(self, "weight", w)

    @property
    def in_shape(self) -> Shape:
        return (self.weight.shape[1],)

    @property
    def out_shape(self) -> Shape:
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False, repr=False)
class Affine(Linear):
    """y = W x + b. ``weight``: storage (n_out, n_in); ``bias``: (n_out,)."""

    bias: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        b = np.zeros(self.weight.shape[0]) if self.bias is None else self.bias
        object.__setattr__(self, "bias", _param(b, (self.weight.shape[0],), self.name, "bias"))


@dataclass(frozen=True, eq=False, repr=False)
class Scale(Node):
    """y = s ⊙ x, element-wise. ``scale`` has the node's shape."""

    scale: np.ndarray = None  # type: ignore[assignment]
    shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = _shape(self.shape if self.shape else np.shape(self.scale), self.name, "shape")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "scale", _param(self.scale, shape, self.name, "scale"))

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def out_shape(self) -> Shape:
        return self.shape


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@dataclass(frozen=True, eq=False, repr=False)
class Conv2d(Node):
    """2-D cross-correlation as in torch.nn.Conv2d. ``weight`` (C_out, C_in/groups, kH, kW), ``bias`` (C_out,),
    ``stride``/``padding``/``dilation`` pairs of ints (padding already resolved from 'same'/'valid'),
    ``input_shape`` (C_in, H, W)."""

    weight: np.ndarray = None  # type: ignore[assignment]
    bias: np.ndarray = None  # type: ignore[assignment]
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    input_shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        w = np.asarray(self.weight, dtype=np.float64) if self.weight is not None else None
        if w is None or w.ndim != 4:
            raise GraphError(f"expected a 4-D kernel (C_out, C_in/groups, kH, kW), got "
                             f"{None if w is None else w.shape}", node=self.name, field="weight")
        if not np.all(np.isfinite(w)):
            raise GraphError("contains NaN or infinite values", node=self.name, field="weight")
        w = w.copy()
        w.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "stride", _pair(self.stride, self.name, "stride", minimum=1))
        object.__setattr__(self, "padding", _pair(self.padding, self.name, "padding"))
        object.__setattr__(self, "dilation", _pair(self.dilation, self.name, "dilation", minimum=1))
        g = int(self.groups)
        object.__setattr__(self, "groups", g)
        ishape = _shape(self.input_shape, self.name, "input_shape")
        if len(ishape) != 3:
            raise GraphError(f"expected (C_in, H, W), got {ishape}", node=self.name, field="input_shape")
        object.__setattr__(self, "input_shape", ishape)
        c_out, c_in_g = w.shape[:2]
        if g < 1 or c_out % g or ishape[0] != c_in_g * g:
            raise GraphError(f"C_in={ishape[0]} and C_out={c_out} do not fit groups={g} with kernel {w.shape}",
                             node=self.name, field="groups")
        b = np.zeros(c_out) if self.bias is None else self.bias
        object.__setattr__(self, "bias", _param(b, (c_out,), self.name, "bias"))
        if min(self.out_shape[1:]) < 1:
            raise GraphError(f"output would be empty for input {ishape}", node=self.name, field="weight")

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    @property
    def out_shape(self) -> Shape:
        _, h, w = self.input_shape
        kh, kw = self.weight.shape[2:]
        return (int(self.weight.shape[0]),
                _conv_out(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
                _conv_out(w, kw, self.stride[1], self.padding[1], self.dilation[1]))


@dataclass(frozen=True, eq=False, repr=False)
class Conv1d(Node):
    """1-D cross-correlation as in torch.nn.Conv1d. ``weight`` (C_out, C_in/groups, k), ``input_shape`` (C_in, L)."""

    weight: np.ndarray = None  # type: ignore[assignment]
    bias: np.ndarray = None  # type: ignore[assignment]
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    input_shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        w = np.asarray(self.weight, dtype=np.float64) if self.weight is not None else None
        if w is None or w.ndim != 3:
            raise GraphError(f"expected a 3-D kernel (C_out, C_in/groups, k), got "
                             f"{None if w is None else w.shape}", node=self.name, field="weight")
        if not np.all(np.isfinite(w)):
            raise GraphError("contains NaN or infinite values", node=self.name, field="weight")
        w = w.copy()
        w.setflags(write=False)
        object.__setattr__(self, "weight", w)
        for f, lo in (("stride", 1), ("padding", 0), ("dilation", 1)):
            v = int(np.asarray(getattr(self, f)).reshape(-1)[0])
            if v < lo:
                raise GraphError(f"must be >= {lo}, got {v}", node=self.name, field=f)
            object.__setattr__(self, f, v)
        g = int(self.groups)
        object.__setattr__(self, "groups", g)
        ishape = _shape(self.input_shape, self.name, "input_shape")
        if len(ishape) != 2:
            raise GraphError(f"expected (C_in, L), got {ishape}", node=self.name, field="input_shape")
        object.__setattr__(self, "input_shape", ishape)
        if g < 1 or w.shape[0] % g or ishape[0] != w.shape[1] * g:
            raise GraphError(f"C_in={ishape[0]} and kernel {w.shape} do not fit groups={g}", node=self.name,
                             field="groups")
        b = np.zeros(w.shape[0]) if self.bias is None else self.bias
        object.__setattr__(self, "bias", _param(b, (w.shape[0],), self.name, "bias"))
        if self.out_shape[1] < 1:
            raise GraphError(f"output would be empty for input {ishape}", node=self.name, field="weight")

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    @property
    def out_shape(self) -> Shape:
        return (int(self.weight.shape[0]),
                _conv_out(self.input_shape[1], self.weight.shape[2], self.stride, self.padding, self.dilation))


@dataclass(frozen=True, eq=False, repr=False)
class SumPool2d(Node):
    """Sum over kernel windows per channel. ``input_shape`` (C, H, W)."""

    kernel_size: Tuple[int, int] = (1, 1)
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    input_shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kernel_size", _pair(self.kernel_size, self.name, "kernel_size", minimum=1))
        object.__setattr__(self, "stride", _pair(self.stride, self.name, "stride", minimum=1))
        object.__setattr__(self, "padding", _pair(self.padding, self.name, "padding"))
        ishape = _shape(self.input_shape, self.name, "input_shape")
        if len(ishape) != 3:
            raise GraphError(f"expected (C, H, W), got {ishape}", node=self.name, field="input_shape")
        object.__setattr__(self, "input_shape", ishape)
        if min(self.out_shape[1:]) < 1:
            raise GraphError(f"output would be empty for input {ishape}", node=self.name, field="kernel_size")

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.input_shape
        return (c, _conv_out(h, self.kernel_size[0], self.stride[0], self.padding[0], 1),
                _conv_out(w, self.kernel_size[1], self.stride[1], self.padding[1], 1))


@dataclass(frozen=True, eq=False, repr=False)
class AvgPool2d(SumPool2d):
    """Mean over kernel windows per channel (SumPool2d divided by kH·kW; padded zeros count)."""


@dataclass(frozen=True, eq=False, repr=False)
class Flatten(Node):
    """Flatten dims ``start_dim..end_dim`` of the per-sample shape ``input_shape`` (no batch dim; C order)."""

    input_shape: Shape = ()
    start_dim: int = 0
    end_dim: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        ishape = _shape(self.input_shape, self.name, "input_shape")
        object.__setattr__(self, "input_shape", ishape)
        nd = len(ishape)
        s, e = int(self.start_dim), int(self.end_dim)
        s2, e2 = (s + nd if s < 0 else s), (e + nd if e < 0 else e)
        if not (0 <= s2 <= e2 < nd):
            raise GraphError(f"dims {s}..{e} out of range for input shape {ishape}", node=self.name,
                             field="start_dim")
        object.__setattr__(self, "start_dim", s)
        object.__setattr__(self, "end_dim", e)

    @property
    def in_shape(self) -> Shape:
        return self.input_shape

    @property
    def out_shape(self) -> Shape:
        nd = len(self.input_shape)
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        mid = int(np.prod(self.input_shape[s:e + 1]))
        return self.input_shape[:s] + (mid,) + self.input_shape[e + 1:]


@dataclass(frozen=True, eq=False, repr=False)
class Delay(Node):
    """y(t) = x(t − delay), ``delay`` in seconds per element."""

    delay: np.ndarray = None  # type: ignore[assignment]
    shape: Shape = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = _shape(self.shape if self.shape else np.shape(self.delay), self.name, "shape")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "delay", _param(self.delay, shape, self.name, "delay", nonneg=True))

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def out_shape(self) -> Shape:
        return self.shape


# ------------------------------------------------------------------------------------------- neuron nodes
@dataclass(frozen=True, eq=False, repr=False)
class _Population(Node):
    """A population of ``shape`` neurons; subclasses list their parameter fields in ``_PARAMS``."""

    shape: Shape = ()
    _PARAMS: ClassVar[Tuple[Tuple[str, str], ...]] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = _shape(self.shape, self.name, "shape")
        object.__setattr__(self, "shape", shape)
        for fname, check in self._PARAMS:
            object.__setattr__(self, fname, _param(getattr(self, fname), shape, self.name, fname,
                                                   positive=check == "positive", nonneg=check == "nonneg"))
        mode = getattr(self, "reset_mode", None)
        if mode is not None and mode not in RESET_MODES:
            raise GraphError(f"must be one of {RESET_MODES}, got {mode!r}", node=self.name, field="reset_mode")

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def out_shape(self) -> Shape:
        return self.shape

    @property
    def size(self) -> int:
        """Number of neurons."""
        return int(np.prod(self.shape))


@dataclass(frozen=True, eq=False, repr=False)
class LIF(_Population):
    """Leaky integrate-and-fire (see the module docstring for the equation)."""

    tau: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = 1.0  # type: ignore[assignment]
    v_leak: np.ndarray = 0.0  # type: ignore[assignment]
    v_threshold: np.ndarray = None  # type: ignore[assignment]
    v_reset: np.ndarray = 0.0  # type: ignore[assignment]
    reset_mode: str = "zero"
    _PARAMS = (("tau", "positive"), ("r", ""), ("v_leak", ""), ("v_threshold", ""), ("v_reset", ""))


@dataclass(frozen=True, eq=False, repr=False)
class CubaLIF(_Population):
    """Current-based LIF: a synaptic current with ``tau_syn`` feeds a LIF membrane with ``tau_mem``."""

    tau_syn: np.ndarray = None  # type: ignore[assignment]
    tau_mem: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = 1.0  # type: ignore[assignment]
    v_leak: np.ndarray = 0.0  # type: ignore[assignment]
    v_threshold: np.ndarray = None  # type: ignore[assignment]
    v_reset: np.ndarray = 0.0  # type: ignore[assignment]
    w_in: np.ndarray = 1.0  # type: ignore[assignment]
    reset_mode: str = "zero"
    _PARAMS = (("tau_syn", "positive"), ("tau_mem", "positive"), ("r", ""), ("v_leak", ""),
               ("v_threshold", ""), ("v_reset", ""), ("w_in", ""))


@dataclass(frozen=True, eq=False, repr=False)
class IF(_Population):
    """Integrate-and-fire (no leak)."""

    r: np.ndarray = 1.0  # type: ignore[assignment]
    v_threshold: np.ndarray = None  # type: ignore[assignment]
    v_reset: np.ndarray = 0.0  # type: ignore[assignment]
    reset_mode: str = "zero"
    _PARAMS = (("r", ""), ("v_threshold", ""), ("v_reset", ""))


@dataclass(frozen=True, eq=False, repr=False)
class LI(_Population):
    """Leaky integrator (non-spiking readout)."""

    tau: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = 1.0  # type: ignore[assignment]
    v_leak: np.ndarray = 0.0  # type: ignore[assignment]
    _PARAMS = (("tau", "positive"), ("r", ""), ("v_leak", ""))


@dataclass(frozen=True, eq=False, repr=False)
class CubaLI(_Population):
    """Current-based leaky integrator (non-spiking readout)."""

    tau_syn: np.ndarray = None  # type: ignore[assignment]
    tau_mem: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = 1.0  # type: ignore[assignment]
    v_leak: np.ndarray = 0.0  # type: ignore[assignment]
    w_in: np.ndarray = 1.0  # type: ignore[assignment]
    _PARAMS = (("tau_syn", "positive"), ("tau_mem", "positive"), ("r", ""), ("v_leak", ""), ("w_in", ""))


@dataclass(frozen=True, eq=False, repr=False)
class Integrator(_Population):
    """Perfect integrator, NIR's ``I`` node: dv/dt = r · I."""

    r: np.ndarray = 1.0  # type: ignore[assignment]
    _PARAMS = (("r", ""),)


@dataclass(frozen=True, eq=False, repr=False)
class Threshold(_Population):
    """Stateless spike generator: s = H(I − threshold)."""

    threshold: np.ndarray = None  # type: ignore[assignment]
    _PARAMS = (("threshold", ""),)


NEURON_TYPES = (LIF, CubaLIF, IF, LI, CubaLI, Integrator)
SPIKING_TYPES = (LIF, CubaLIF, IF, Threshold)
SYNAPSE_TYPES = (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d)
