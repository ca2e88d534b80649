"""Sigma-delta networks in PyTorch: a ReLU network trained as an ANN, run as an SDNN with graded spikes.

As lava-dl's slayer SDNN blocks do, the network is trained frame by frame as an ordinary ReLU network (float,
any optimiser) and deployed as sigma-delta neurons, which send only the changes of their activations: on
temporally redundant input (video) most neurons send nothing most of the time, while the readout still tracks the
ANN's output (up to the thresholds and the integer rounding).

    >>> net = SigmaDeltaNet(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 11 * 11, 10,
    ...                     bias=False))
    >>> ...train net(frames) as an ANN...
    >>> program = net.to_program((1, 24, 24), input_scale=1.0)       # Delta -> SigmaDelta ... -> Sigma readout
    >>> y = net.integer_forward(program, video)                        # (B, T, 10) float, from the integer run

Integer mapping (:meth:`SigmaDeltaNet.to_program`; arithmetic in :mod:`toolchain.fixedpoint_sdn`):

* input frames ``x`` become integers ``x_int = round(x * input_scale)`` (a graded port of ``input_bits`` bits),
  fed through an identity synapse into a ``Delta`` encoder (``spike_exp`` = ``state_exp`` = 6: lava-dl's SDNN
  convention, so the Program can be written as a netx file);
* every ``Linear``/``Conv2d`` + ``ReLU`` pair becomes a synapse group and a ``SigmaDelta`` group: the activation
  state holds ``2^12 · input_scale · a`` and a payload ``2^6 · input_scale · Δa``, so the synapse must multiply by
  ``64 · W``: integer weights ``W_int = round(64 · W · 2^-e)`` with the smallest exponent ``e`` that keeps them in
  [-256, 255] (9-bit mixed sign, used untruncated), and the bias mantissa is ``round(b · input_scale)`` (Lava
  scales it by 2^12);
* the last ``Linear``/``Conv2d`` (without ReLU, without bias: Lava's ``Sigma`` takes none) feeds a ``Sigma``
  readout whose sigma is ``2^12 · input_scale · y``; :meth:`integer_forward` divides it back.
* ``Flatten`` after a conv: torch flattens (C, H, W), the Program's grids are (W, H, C): the dense columns are
  permuted (:func:`toolchain.backends.netx.flatten_perm`).

NIR has no sigma-delta (or ReLU) node: :func:`export_nir` raises a :class:`~toolchain.errors.ToolchainError`
naming the layer; SDNNs are exchanged through netx (:func:`toolchain.backends.netx.export_netx` of the Program).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import ToolchainError
from ..ir.storage import Conv, Dense
from ..program import InputPort, Program, SynapseGroup, sigma_delta_group

__all__ = ["SigmaDeltaNet", "export_nir", "SDNN_SPIKE_EXP", "SDNN_STATE_EXP"]

SDNN_SPIKE_EXP = 6
SDNN_STATE_EXP = 6
_W_LIMIT = 255


def _weight_ints(w: np.ndarray, name: str, min_exp: int = -8) -> Tuple[np.ndarray, int]:
    """``(W_int, e)`` with ``W_int · 2^e ≈ 64 · W``, ``|W_int| <= 255`` and the smallest such ``e >= min_exp``."""
    m = float(np.abs(w).max()) * 64.0
    if m == 0:
        return np.zeros(w.shape, np.int64), 0
    e = int(np.ceil(np.log2(m / _W_LIMIT)))
    e = max(min(e, 7), min_exp)
    wi = np.round(w * 64.0 / 2.0 ** e).astype(np.int64)
    if np.abs(wi).max() > 256:
        raise ToolchainError(f"weights up to {np.abs(w).max():.3g} need a weight exponent above 7", node=name,
                             field="weight")
    return np.clip(wi, -256, 255), e


class SigmaDeltaNet(nn.Sequential):
    """A feed-forward ReLU network (``Linear``, ``Conv2d``, ``ReLU``, ``Flatten``) trained as an ANN and deployed
    as a sigma-delta network (module docstring). ``forward`` is the ANN on one frame (B, *in) or a stream
    (B, T, *in), frame by frame."""

    _ALLOWED = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Flatten)

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        for k, m in enumerate(self):
            if not isinstance(m, self._ALLOWED):
                raise ToolchainError(f"{type(m).__name__} is not a sigma-delta layer (Linear, Conv2d, ReLU, "
                                     "Flatten)", node=f"layer {k}", field="type")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        first = next(m for m in self if not isinstance(m, (nn.ReLU, nn.Flatten)))
        frame_dims = 3 if isinstance(first, nn.Conv2d) else 1
        if x.dim() == frame_dims + 2:  # a stream (B, T, ...)
            b, t = x.shape[:2]
            y = super().forward(x.reshape((b * t,) + tuple(x.shape[2:])))
            return y.reshape((b, t) + tuple(y.shape[1:]))
        return super().forward(x)

    def _plan(self) -> List[Tuple[nn.Module, bool, bool]]:
        """(synaptic layer, followed by ReLU, preceded by Flatten) for each Linear/Conv2d."""
        plan: List[Tuple[nn.Module, bool, bool]] = []
        flat = False
        mods = list(self)
        for k, m in enumerate(mods):
            if isinstance(m, nn.Flatten):
                flat = True
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                relu = k + 1 < len(mods) and isinstance(mods[k + 1], nn.ReLU)
                plan.append((m, relu, flat))
                flat = False
        if not plan:
            raise ToolchainError("the network has no Linear or Conv2d layer", field="layers")
        for m, relu, _ in plan[:-1]:
            if not relu:
                raise ToolchainError("every layer but the last needs a ReLU after it (a SigmaDelta neuron)",
                                     node=type(m).__name__, field="layers")
        last = plan[-1][0]
        if plan[-1][1]:
            raise ToolchainError("the last layer is the Sigma readout: no ReLU after it", node=type(last).__name__,
                                 field="layers")
        if last.bias is not None and torch.any(last.bias != 0):
            raise ToolchainError("the last layer feeds Lava's Sigma readout, which has no bias: train it with "
                                 "bias=False", node=type(last).__name__, field="bias")
        return plan

    def to_program(self, input_shape: Sequence[int], input_scale: float = 1.0, vth: int = 1,
                   input_vth: Optional[int] = None, input_bits: int = 8, target: str = "loihi2",
                   netx: bool = False) -> Program:
        """The integer SDNN Program (module docstring). ``input_shape``: one frame, (C, H, W) or (n,);
        ``input_scale``: frames are integers ``round(x * input_scale)`` in [0, 2^input_bits - 1]; ``vth``: the
        SigmaDelta threshold mantissa (a change of ``vth / input_scale`` in an activation is sent), ``input_vth``
        the encoder's (default ``vth``). ``netx``: weight exponents >= 0 only (a netx file holds no exponent;
        a negative one does not fold into integer weights), so that the Program can be exported to netx."""
        plan = self._plan()
        shape = tuple(int(s) for s in input_shape)
        grid = len(shape) == 3
        ours = (shape[2], shape[1], shape[0]) if grid else (int(np.prod(shape)),)
        n_in = int(np.prod(ours))
        from ..ir.storage import Csr
        groups = [sigma_delta_group("enc", ours, "delta", vth=input_vth if input_vth is not None else vth,
                                    spike_exp=SDNN_SPIKE_EXP, state_exp=SDNN_STATE_EXP, source="input")]
        syns = [SynapseGroup("w_in", "input", "enc", Csr.from_dense(np.eye(n_in, dtype=np.int64)),
                             sign_mode="excitatory")]
        prev, prev_shape = "enc", ours
        for k, (m, relu, flat) in enumerate(plan):
            name = f"l{k}"
            w = m.weight.detach().cpu().double().numpy()
            wi, e = _weight_ints(w, name, 0 if netx else -8)
            if isinstance(m, nn.Conv2d):
                if len(prev_shape) != 3:
                    raise ToolchainError("a Conv2d after a flat layer", node=name, field="layers")
                if m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise ToolchainError("only numeric zero padding", node=name, field="padding")
                wd, hd, cd = prev_shape
                ho = (hd + 2 * m.padding[0] - m.dilation[0] * (m.kernel_size[0] - 1) - 1) // m.stride[0] + 1
                wo = (wd + 2 * m.padding[1] - m.dilation[1] * (m.kernel_size[1] - 1) - 1) // m.stride[1] + 1
                out_shape = (wo, ho, m.out_channels)
                storage: Any = Conv(prev_shape, out_shape, wi, tuple(m.stride), tuple(m.padding),
                                    tuple(m.dilation), m.groups)
                b = m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(m.out_channels)
                bias = np.broadcast_to(b, out_shape).reshape(-1)
            else:
                out_shape = (m.out_features,)
                if flat and len(prev_shape) == 3:
                    from ..backends.netx import flatten_perm
                    wi = wi[:, flatten_perm(prev_shape)]
                storage = Dense(wi)
                bias = m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(out_shape[0])
            if relu:
                g = sigma_delta_group(name, out_shape, "sigma_delta", vth=vth, bias=np.round(bias * input_scale),
                                      spike_exp=SDNN_SPIKE_EXP, state_exp=SDNN_STATE_EXP, source=type(m).__name__)
            else:
                g = sigma_delta_group(name, out_shape, "sigma", source=type(m).__name__)
            groups.append(g)
            syns.append(SynapseGroup(f"w{k}", prev, name, storage, weight_exp=e, num_weight_bits=9))
            prev, prev_shape = name, out_shape
        meta = {"sdnn": {"input_scale": float(input_scale), "readout_scale": float(2 ** 12 * input_scale),
                         "input_shape": list(shape)}}
        return Program(groups, syns, [InputPort("input", ours, input_bits)], prev, target=target, metadata=meta)

    @staticmethod
    def frames_to_input(program: Program, x: "torch.Tensor | np.ndarray") -> np.ndarray:
        """Float frames (B, T, *input_shape) as the Program's integer input (B, T, *port shape)."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        scale = program.metadata["sdnn"]["input_scale"]
        xi = np.round(a * scale).astype(np.int64)
        if xi.ndim == 5:  # (B, T, C, H, W) -> (B, T, W, H, C)
            xi = xi.transpose(0, 1, 4, 3, 2)
        hi = 2 ** program.inputs[0].num_message_bits - 1
        if xi.size and (xi.min() < 0 or xi.max() > hi):
            raise ToolchainError(f"scaled frames in [{xi.min()}, {xi.max()}] leave the input's [0, {hi}]",
                                 field="input")
        return xi.reshape(xi.shape[:2] + tuple(program.inputs[0].shape))

    def integer_forward(self, program: Program, x: "torch.Tensor | np.ndarray") -> np.ndarray:
        """The integer mode: run ``program`` (from :meth:`to_program`) on the reference simulator (bit-exact with
        Lava) over a stream ``x`` (B, T, *input_shape) and return the readout (B, T, n_out) in the ANN's units.
        Two steps of latency per layer (identity + each synapse layer): output step t reflects frame
        ``t - (layers + 1)``."""
        from ..sim.reference import simulate
        res = simulate(program, self.frames_to_input(program, x), record=False)
        return res.output.astype(np.float64) / program.metadata["sdnn"]["readout_scale"]


def export_nir(model: nn.Module) -> Any:
    """NIR export of a sigma-delta network: always refused, naming the first layer NIR cannot hold. NIR (1.0)
    has no sigma-delta neuron and no ReLU; export the Program to netx instead (module docstring)."""
    for k, m in enumerate(model):
        if isinstance(m, nn.ReLU):
            raise ToolchainError("NIR has no sigma-delta (or ReLU) node, so a sigma-delta network cannot be written "
                                 "as NIR; export its Program with toolchain.backends.netx.export_netx", node=f"layer {k}",
                                 field="type")
    raise ToolchainError("NIR has no sigma-delta readout (Sigma) node; export the Program to netx", field="type")
