"""The float executor: the IR's reference semantics in float64 numpy, forward Euler at a step ``dt``.

Execution within one time step (NIR semantics, as on Loihi): nodes run in the graph's topological order; an
undelayed edge delivers its source's value of *this* step, a delayed (recurrent) edge the value of the
*previous* step; several edges into one node are summed. At step 0 a delayed edge delivers the value of a
virtual step −1 in which inputs, neurons, integrators and delays output 0 and stateless nodes apply their
function (an Affine on a recurrent edge delivers its bias). Inputs arrive as
``x[:, t]`` at step ``t``; outputs are read at the same step.

Neuron updates per step (``I``: the node's summed input at this step; ``dt``, ``tau`` in seconds; voltages in
the network's voltage unit, ``r`` in voltage per input unit, ``w_in`` dimensionless; all state starts at 0):

* ``LIF``:       v ← v + dt/tau · (v_leak − v + r·I);  s = v > v_threshold;  reset
* ``CubaLIF``:   i ← i + dt/tau_syn · (−i + w_in·I)  *first*, then  v ← v + dt/tau_mem · (v_leak − v + r·i)
  with the *new* i (Loihi's order); s = v > v_threshold; reset
* ``IF``:        v ← v + r·I  (the input is a per-step impulse, as in Sinabs and on Loihi);  s = v > v_threshold;
  reset
* ``LI``:        v ← v + dt/tau · (v_leak − v + r·I);  output v
* ``CubaLI``:    as CubaLIF without spikes; output v
* ``Integrator`` (NIR ``I``): v ← v + r·I (per-step impulse, like IF); output v
* ``Threshold``: s = I > threshold (stateless)
* ``Delay``:     y_t = x_{t−k} with k = round(delay/dt) steps per element (0 before the first k steps)

Reset (``reset_mode`` of the node): ``"zero"`` sets v ← v_reset, ``"subtract"`` v ← v − v_threshold, applied
right after the spike, in the same step (``reset_timing="immediate"``, the IR's and Loihi's semantics).
Framework reproductions (chosen by the graph's ``metadata`` written by a preset, or by the arguments):

* ``reset_timing="deferred"``: the reset of a spike at step t−1 is applied at step t *after* that step's update
  (subtract: v_t = f(v_{t−1}) − v_threshold; zero: v_t = v_reset), as snnTorch does with ``reset_delay=True``.
  The recorded ``v`` is then the value the spike was decided on.
* ``reset_timing="snntorch"``: per node, what snnTorch's modules do: deferred for subtract, and for zero on
  CubaLIF (``Synaptic``/``RSynaptic``) and on LIF nodes in a recurrent loop (``RLeaky``); immediate for zero on
  other LIF nodes (``Leaky`` zeroes the state before the update, which is the immediate reset).
* A mapping ``{node name: timing}`` sets the timing per node (missing nodes: "immediate").

Synapses: ``Affine`` y = W x + b, ``Linear`` y = W x, ``Scale`` y = s ⊙ x, ``Conv1d``/``Conv2d`` cross-correlation
as in torch (float64, no autograd), ``SumPool2d`` window sums, ``AvgPool2d`` window sums / (kH·kW) (padded zeros
count), ``Flatten`` C-order reshape. Sparse weights (Csr/Structured) run as their dense values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from .. import ir
from ..errors import InputError

__all__ = ["simulate_float", "FloatResult"]

ArrayLike = Union[np.ndarray, Any]


@dataclass
class FloatResult:
    """What :func:`simulate_float` returns. Every array has layout (batch, time, *shape), float64.

    ``outputs``: the value of every Output node (spikes as 0/1 for spiking sources).
    ``values``: with ``record=True``, the output of every node (spikes for spiking nodes, v for LI/CubaLI/I).
    ``states``: with ``record=True``, per neuron node ``{"v": ...}`` (and ``"i"`` for CubaLIF/CubaLI), the state
    at the end of each step (after an immediate reset; before a deferred one).
    """

    outputs: Dict[str, np.ndarray]
    values: Dict[str, np.ndarray] = field(default_factory=dict)
    states: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)
    dt: float = 0.0
    reset_timing: Dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The single Output node's values (error when the graph has several)."""
        if len(self.outputs) != 1:
            raise InputError(f"graph has {len(self.outputs)} outputs; use .outputs[name]", field="outputs")
        return next(iter(self.outputs.values()))

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.outputs:
            return self.outputs[name]
        if name in self.values:
            return self.values[name]
        raise KeyError(f"no output or recorded node '{name}' (pass record=True to record every node)")


def _in_cycle(graph: ir.Graph) -> set:
    """Names of nodes that lie on a directed cycle."""
    succ: Dict[str, List[str]] = {n: [] for n in graph.nodes}
    for e in graph.edges:
        succ[e.src].append(e.dst)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: set = set()
    stack: List[str] = []
    result: set = set()
    counter = [0]

    def strong(v: str) -> None:  # iterative Tarjan would be longer; graphs here are small
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in succ[v]:
                result.update(comp)

    for v in graph.nodes:
        if v not in index:
            strong(v)
    return result


def _resolve_timing(graph: ir.Graph, reset_timing: Union[str, Mapping[str, str], None]) -> Dict[str, str]:
    spiking = [n for n, node in graph.nodes.items() if isinstance(node, (ir.LIF, ir.CubaLIF, ir.IF))]
    if reset_timing is None:
        reset_timing = graph.metadata.get("reset_timing", "immediate") or "immediate"
    if isinstance(reset_timing, Mapping):
        out = {n: str(reset_timing.get(n, "immediate")) for n in spiking}
    elif reset_timing in ("immediate", "deferred"):
        out = {n: str(reset_timing) for n in spiking}
    elif reset_timing == "snntorch":
        cyc = _in_cycle(graph)
        out = {}
        for n in spiking:
            node = graph[n]
            deferred = (node.reset_mode == "subtract" or isinstance(node, ir.CubaLIF)
                        or (isinstance(node, ir.LIF) and n in cyc))
            out[n] = "deferred" if deferred else "immediate"
    else:
        raise InputError(f"reset_timing must be 'immediate', 'deferred', 'snntorch' or a mapping, got "
                         f"{reset_timing!r}", field="reset_timing")
    for n, tmode in out.items():
        if tmode not in ("immediate", "deferred"):
            raise InputError(f"reset timing {tmode!r} is not 'immediate' or 'deferred'", node=n,
                             field="reset_timing")
    return out


def _tensor(x: np.ndarray) -> Any:
    """A float64 torch tensor owning a C-contiguous copy of ``x`` (inputs may be read-only views)."""
    import torch
    return torch.from_numpy(np.array(x, dtype=np.float64, order="C", copy=True))


class _Runner:
    """Per-node step functions with their state, for one batch."""

    def __init__(self, graph: ir.Graph, dt: float, batch: int, timing: Dict[str, str]):
        self.graph, self.dt, self.batch, self.timing = graph, dt, batch, timing
        self.state: Dict[str, Dict[str, np.ndarray]] = {}
        self.fns: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {}
        for name in graph.topological_order():
            node = graph[name]
            if not isinstance(node, ir.Input):
                self.fns[name] = self._make(node)

    def _zeros(self, shape: Tuple[int, ...]) -> np.ndarray:
        return np.zeros((self.batch,) + tuple(shape), dtype=np.float64)

    def _make(self, node: ir.Node) -> Callable[[np.ndarray, int], np.ndarray]:  # noqa: C901 - one case per type
        dt = self.dt
        if isinstance(node, ir.Output):
            return lambda x, t: x
        if isinstance(node, ir.Linear):
            w_t = np.ascontiguousarray(np.asarray(node.weight.to_dense(), dtype=np.float64).T)
            if isinstance(node, ir.Affine):
                b = np.asarray(node.bias, dtype=np.float64)
                return lambda x, t: x @ w_t + b
            return lambda x, t: x @ w_t
        if isinstance(node, ir.Scale):
            s = node.scale
            return lambda x, t: x * s
        if isinstance(node, ir.Flatten):
            out = node.out_shape
            return lambda x, t: x.reshape((x.shape[0],) + out)
        if isinstance(node, (ir.Conv1d, ir.Conv2d, ir.SumPool2d)):
            return self._make_torch(node)
        if isinstance(node, ir.Delay):
            return self._make_delay(node)
        if isinstance(node, ir.Threshold):
            th = node.threshold
            return lambda x, t: (x > th).astype(np.float64)
        if isinstance(node, ir.Integrator):
            st = self.state.setdefault(node.name, {"v": self._zeros(node.shape)})
            r = node.r

            def integ(x: np.ndarray, t: int) -> np.ndarray:
                st["v"] = st["v"] + r * x
                return st["v"]
            return integ
        if isinstance(node, ir.LI):
            st = self.state.setdefault(node.name, {"v": self._zeros(node.shape)})
            a, r, vl = dt / node.tau, node.r, node.v_leak

            def li(x: np.ndarray, t: int) -> np.ndarray:
                st["v"] = st["v"] + a * (vl - st["v"] + r * x)
                return st["v"]
            return li
        if isinstance(node, ir.CubaLI):
            st = self.state.setdefault(node.name, {"v": self._zeros(node.shape), "i": self._zeros(node.shape)})
            upd = self._cuba_update(node)

            def cli(x: np.ndarray, t: int) -> np.ndarray:
                upd(st, x)
                return st["v"]
            return cli
        if isinstance(node, (ir.LIF, ir.CubaLIF, ir.IF)):
            return self._make_spiking(node)
        raise InputError(f"the float executor has no rule for node type {node.kind}", node=node.name,
                         field="type")  # pragma: no cover

    def _cuba_update(self, node: Any) -> Callable[[Dict[str, np.ndarray], np.ndarray], None]:
        a_syn, a_mem = self.dt / node.tau_syn, self.dt / node.tau_mem
        r, vl, w_in = node.r, node.v_leak, node.w_in

        def upd(st: Dict[str, np.ndarray], x: np.ndarray) -> None:
            st["i"] = st["i"] + a_syn * (-st["i"] + w_in * x)
            st["v"] = st["v"] + a_mem * (vl - st["v"] + r * st["i"])
        return upd

    def _make_spiking(self, node: Any) -> Callable[[np.ndarray, int], np.ndarray]:
        shape = node.shape
        st = self.state.setdefault(node.name, {"v": self._zeros(shape)})
        if isinstance(node, ir.CubaLIF):
            st["i"] = self._zeros(shape)
            update = self._cuba_update(node)
        elif isinstance(node, ir.LIF):
            a, r, vl = self.dt / node.tau, node.r, node.v_leak

            def update(st: Dict[str, np.ndarray], x: np.ndarray) -> None:
                st["v"] = st["v"] + a * (vl - st["v"] + r * x)
        else:  # IF
            r = node.r

            def update(st: Dict[str, np.ndarray], x: np.ndarray) -> None:
                st["v"] = st["v"] + r * x
        th, vr, subtract = node.v_threshold, node.v_reset, node.reset_mode == "subtract"
        deferred = self.timing.get(node.name, "immediate") == "deferred"
        prev = self._zeros(shape).astype(bool)

        def step(x: np.ndarray, t: int) -> np.ndarray:
            nonlocal prev
            update(st, x)
            v = st["v"]
            if deferred:
                if prev.any():
                    v = v - th * prev if subtract else np.where(prev, vr, v)
                s = v > th
                prev = s
            else:
                s = v > th
                if s.any():
                    v = v - th * s if subtract else np.where(s, vr, v)
            st["v"] = v
            return s.astype(np.float64)
        return step

    def _make_delay(self, node: ir.Delay) -> Callable[[np.ndarray, int], np.ndarray]:
        steps = np.rint(np.asarray(node.delay) / self.dt).astype(np.int64)
        length = int(steps.max()) + 1
        buf = np.zeros((length, self.batch) + node.shape, dtype=np.float64)
        flat_steps = steps.reshape(-1)
        cols = np.arange(flat_steps.size)

        def delay(x: np.ndarray, t: int) -> np.ndarray:
            buf[t % length] = x
            src = (t - flat_steps) % length
            vals = buf.reshape(length, self.batch, -1)[src, :, cols]  # (n, batch)
            vals = np.where((t - flat_steps >= 0)[:, None], vals, 0.0)
            return vals.T.reshape((self.batch,) + node.shape)
        return delay

    def _make_torch(self, node: Any) -> Callable[[np.ndarray, int], np.ndarray]:
        import torch
        import torch.nn.functional as F
        if isinstance(node, ir.SumPool2d):
            c = node.input_shape[0]
            kh, kw = node.kernel_size
            kernel = torch.ones((c, 1, kh, kw), dtype=torch.float64)
            div = float(kh * kw) if isinstance(node, ir.AvgPool2d) else None

            def pool(x: np.ndarray, t: int) -> np.ndarray:
                with torch.no_grad():
                    y = F.conv2d(_tensor(x), kernel, stride=node.stride, padding=node.padding, groups=c).numpy()
                return y / div if div is not None else y
            return pool
        w = torch.from_numpy(np.array(node.weight, dtype=np.float64, copy=True))
        b = torch.from_numpy(np.array(node.bias, dtype=np.float64, copy=True))
        conv = F.conv2d if isinstance(node, ir.Conv2d) else F.conv1d

        def run(x: np.ndarray, t: int) -> np.ndarray:
            with torch.no_grad():
                return conv(_tensor(x), w, b, stride=node.stride, padding=node.padding, dilation=node.dilation,
                            groups=node.groups).numpy()
        return run


def _inputs(graph: ir.Graph, x: Union[ArrayLike, Mapping[str, ArrayLike]]) -> Tuple[Dict[str, np.ndarray], int, int]:
    names = graph.inputs
    if isinstance(x, Mapping):
        missing = [n for n in names if n not in x]
        extra = [n for n in x if n not in names]
        if missing or extra:
            raise InputError(f"inputs given for {sorted(x)}, graph inputs are {names}", field="x",
                             node=(missing or extra)[0])
        arrays = {n: np.asarray(x[n], dtype=np.float64) for n in names}
    else:
        if len(names) != 1:
            raise InputError(f"graph has {len(names)} inputs {names}: pass a dict name -> array", field="x")
        arrays = {names[0]: np.asarray(x, dtype=np.float64)}
    bt = None
    for n, a in arrays.items():
        want = graph[n].shape
        if a.ndim != 2 + len(want) or tuple(a.shape[2:]) != tuple(want):
            raise InputError(f"input must have shape (batch, time, {', '.join(map(str, want))}), got {a.shape}",
                             node=n, field="x")
        if bt is not None and a.shape[:2] != bt:
            raise InputError(f"batch/time {a.shape[:2]} differ from another input's {bt}", node=n, field="x")
        if not np.all(np.isfinite(a)):
            raise InputError("contains NaN or infinite values", node=n, field="x")
        bt = a.shape[:2]
    assert bt is not None
    return arrays, int(bt[0]), int(bt[1])


_STATEFUL = (ir.LIF, ir.CubaLIF, ir.IF, ir.LI, ir.CubaLI, ir.Integrator, ir.Delay)


def _virtual_step(graph: ir.Graph, runner: "_Runner", in_edges: Dict[str, List[Tuple[str, int]]],
                  batch: int) -> Dict[str, np.ndarray]:
    """Node values at step −1, what delayed edges deliver at step 0: inputs and stateful nodes (neurons,
    integrators, delays) are 0; stateless nodes apply their function to that (so an Affine on a recurrent edge
    delivers its bias at step 0, as snnTorch's recurrent ``Linear`` does and as a bias folded into the target
    neuron does on hardware)."""
    val: Dict[str, np.ndarray] = {}
    for n in graph.topological_order():
        node = graph[n]
        zero = np.zeros((batch,) + node.out_shape)
        if isinstance(node, (ir.Input,) + _STATEFUL):
            val[n] = zero
            continue
        total = None
        for src, delay in in_edges[n]:  # values before step −1 are 0 as well
            v = np.zeros((batch,) + graph[src].out_shape) if delay else val[src]
            total = v if total is None else total + v
        val[n] = runner.fns[n](total, -1) if total is not None else zero
    return val


def simulate_float(graph: ir.Graph, x: Union[ArrayLike, Mapping[str, ArrayLike]], dt: Optional[float] = None,
                   record: bool = False,
                   reset_timing: Union[str, Mapping[str, str], None] = None) -> FloatResult:
    """Run ``graph`` on ``x`` with forward Euler at ``dt`` seconds (``graph.dt`` when None), float64, batched.

    ``x``: array (batch, time, *input_shape) for a single-input graph, or a dict input name -> array.
    ``reset_timing``: framework reproduction (see the module docstring); None takes it from
    ``graph.metadata["reset_timing"]`` (set by ``load(..., preset=...)``), defaulting to the IR's "immediate".
    Returns a :class:`FloatResult` (outputs of every Output node; every node and neuron state with ``record``).
    """
    dt = graph.dt if dt is None else dt
    if dt is None or not (float(dt) > 0 and np.isfinite(float(dt))):
        raise InputError(f"dt must be a positive number of seconds (graph.dt is {graph.dt}), got {dt}", field="dt")
    dt = float(dt)
    timing = _resolve_timing(graph, reset_timing)
    arrays, batch, steps = _inputs(graph, x)
    runner = _Runner(graph, dt, batch, timing)
    order = graph.topological_order()
    in_edges = {n: [(e.src, e.delay) for e in graph.in_edges(n)] for n in order}
    outputs = {n: np.zeros((batch, steps) + graph[n].shape) for n in graph.outputs}
    values: Dict[str, np.ndarray] = {}
    states: Dict[str, Dict[str, np.ndarray]] = {}
    if record:
        values = {n: np.zeros((batch, steps) + graph[n].out_shape) for n in order}
        states = {n: {k: np.zeros((batch, steps) + v.shape[1:]) for k, v in st.items()}
                  for n, st in runner.state.items()}
    prev = _virtual_step(graph, runner, in_edges, batch)
    for t in range(steps):
        cur: Dict[str, np.ndarray] = {}
        for n in order:
            if n in arrays:
                y = arrays[n][:, t]
            else:
                srcs = in_edges[n]
                total = None
                for src, delay in srcs:
                    v = prev[src] if delay else cur[src]
                    total = v if total is None else total + v
                assert total is not None  # verify() guarantees an incoming edge
                y = runner.fns[n](total, t)
            cur[n] = y
            if record:
                values[n][:, t] = y
        if record:
            for n, st in runner.state.items():
                for k, v in st.items():
                    states[n][k][:, t] = v
        for n in outputs:
            outputs[n][:, t] = cur[n]
        prev = cur
    return FloatResult(outputs=outputs, values=values, states=states, dt=dt, reset_timing=timing)
