"""Seeded random factories used by the tests, benchmarks and examples (the one place for them).

Every factory takes an explicit ``seed`` (or ``numpy.random.Generator``) so that a failing case can be replayed.
"""
from __future__ import annotations

import dataclasses
from typing import Union

import numpy as np

SeedLike = Union[int, np.random.Generator, None]


def rng(seed: SeedLike = 0) -> np.random.Generator:
    """A numpy Generator from a seed (or pass a Generator through)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_spikes(batch: int, steps: int, n: int, rate: float = 0.2, seed: SeedLike = 0) -> np.ndarray:
    """Binary input spikes, layout (batch, time, n), dtype int32, each entry 1 with probability ``rate``."""
    return (rng(seed).random((batch, steps, n)) < rate).astype(np.int32)


# ---------------------------------------------------------------------------------------------- toolchain.nn
def random_spike_array(batch: int, steps: int, shape, rate: float = 0.2, seed: SeedLike = 0) -> np.ndarray:
    """Binary input spikes of any per-step shape: (batch, steps, *shape), int32, each 1 with probability rate."""
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    return (rng(seed).random((batch, steps) + shape) < rate).astype(np.int32)


def random_spiking_model(kind: str = "ff", seed: SeedLike = 0, neuron: str = "lif", reset: str = "subtract",
                         readout: str = "spiking", dtype=None):
    """A small 'trained-like' :class:`toolchain.nn.SpikingNet` with per-neuron leaks and thresholds.

    ``kind``: "ff" (Linear-LIF-Linear-LIF, 12 inputs), "rec" (Linear, Recurrent LIF, Linear-LIF; 10 inputs),
    "conv" (Conv2d(2->4, 3x3, pad 1) on 2x8x8, LIF, SumPool2d(2), Flatten, Linear-LIF). ``neuron``: "lif" or
    "cuba" for the hidden neurons; ``reset``: "subtract" or "zero"; ``readout``: "spiking" (last layer LIF) or
    "li" (last layer a leaky integrator). Leaks α ∈ [0.6, 0.97], thresholds θ ∈ [0.6, 1.4], weights
    ~ N(0.15, 1)/sqrt(fan_in)·2 so that inputs at rate 0.2–0.3 make the layers fire. Returns
    ``(model, input_shape)``; the model is float64 unless ``dtype`` says otherwise.
    """
    import torch
    from torch import nn

    from .nn import LI, LIF, CubaLIF, Recurrent, SpikingNet, SumPool2d

    g = rng(seed)
    dtype = torch.float64 if dtype is None else dtype

    def t(a):
        return torch.as_tensor(np.asarray(a), dtype=dtype)

    def hidden(shape):
        shape = (shape,) if isinstance(shape, int) else shape
        a = g.uniform(0.6, 0.97, size=shape)
        th = g.uniform(0.6, 1.4, size=shape)
        if neuron == "cuba":
            return CubaLIF(shape, alpha_syn=t(g.uniform(0.3, 0.8, size=shape)), alpha_mem=t(a), threshold=t(th),
                           reset=reset)
        return LIF(shape, alpha=t(a), threshold=t(th), reset=reset)

    def linear(n_in, n_out, bias=True):
        lin = nn.Linear(n_in, n_out, bias=bias)
        with torch.no_grad():
            lin.weight.copy_(t((g.normal(0.15, 1.0, size=(n_out, n_in))) * 2.0 / np.sqrt(n_in)))
            if bias:
                lin.bias.copy_(t(g.normal(0.0, 0.1, size=n_out)))
        return lin

    def out_layer(n):
        if readout == "li":
            return LI(n, alpha=t(g.uniform(0.6, 0.97, size=n)))
        return hidden(n)

    if kind == "ff":
        mods = [linear(12, 16), hidden(16), linear(16, 6), out_layer(6)]
        in_shape = (12,)
    elif kind == "rec":
        rec = Recurrent(hidden(12), 12)
        with torch.no_grad():
            rec.rec.weight.copy_(t(g.normal(0.0, 1.0, size=(12, 12)) * 1.0 / np.sqrt(12)))
        mods = [linear(10, 12), rec, linear(12, 5), out_layer(5)]
        in_shape = (10,)
    elif kind == "conv":
        conv = nn.Conv2d(2, 4, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(t(g.normal(0.15, 1.0, size=(4, 2, 3, 3)) * 2.0 / np.sqrt(18)))
            conv.bias.copy_(t(g.normal(0.0, 0.1, size=4)))
        mods = [conv, hidden((4, 8, 8)), SumPool2d(2), nn.Flatten(), linear(64, 10), out_layer(10)]
        in_shape = (2, 8, 8)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose 'ff', 'rec' or 'conv'")
    return SpikingNet(*mods).to(dtype), in_shape


# ---------------------------------------------------------------------------------------------- training (STOP, BPTT)
def stop_tiny_mlp(n_in: int = 5, hidden: int = 6, n_out: int = 3, reset: str = "subtract", per_neuron: bool = True,
                  learn: bool = True, seed: int = 0, weight_gain: float = 3.0):
    """A small ``SpikingNet`` (Linear -> LIF -> Linear -> LI) with learnable thresholds and leaks (``learn``), weights
    scaled by ``weight_gain`` so that the hidden layer spikes on random binary input; built with ``seed``."""
    import torch
    from torch import nn

    from .nn import LI, LIF, SpikingNet

    torch.manual_seed(seed)
    model = SpikingNet(
        nn.Linear(n_in, hidden),
        LIF(hidden, alpha=0.8, threshold=0.7, reset=reset, learn_threshold=learn, learn_leak=learn,
            per_neuron=per_neuron),
        nn.Linear(hidden, n_out),
        LI(n_out, alpha=0.9, learn_leak=learn, per_neuron=per_neuron),
    )
    with torch.no_grad():
        model[0].weight.mul_(weight_gain)
    return model


# ---------------------------------------------------------------------------------------------------- NIR I/O
def graph_every_node_type(seed: SeedLike = 0, dt: float = 1e-3):
    """An IR graph holding every node type (two inputs, three outputs, one recurrent loop), seeded values.

    Image branch: Input (2,6,6) -> Conv2d -> IF -> SumPool2d -> AvgPool2d -> Flatten -> Affine -> LIF (with a
    recurrent Linear) -> Linear -> CubaLIF -> Scale -> Threshold -> Delay -> LI -> Output ``out_a``; CubaLIF ->
    Linear -> Integrator -> Output ``out_b``. Sequence branch: Input (2,10) -> Conv1d -> Flatten -> Linear ->
    CubaLI -> Output ``out_c``. Delays are whole multiples of ``dt``.
    """
    from .ir import (IF, LI, LIF, Affine, AvgPool2d, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Dense, Flatten, Graph,
                     Input, Integrator, Linear, Output, Scale, SumPool2d, Threshold)
    r = rng(seed)

    def u(shape, lo, hi):
        return lo + (hi - lo) * r.random(shape)

    nodes = [
        Input("img", shape=(2, 6, 6)),
        Conv2d("conv", weight=u((3, 2, 3, 3), -0.5, 1.0), bias=u(3, 0, 0.1), padding=(1, 1),
               input_shape=(2, 6, 6)),
        IF("if1", r=u((3, 6, 6), 0.8, 1.2), v_threshold=u((3, 6, 6), 0.5, 1.0), reset_mode="subtract",
           shape=(3, 6, 6)),
        SumPool2d("sum", kernel_size=(2, 2), stride=(2, 2), input_shape=(3, 6, 6)),
        AvgPool2d("avg", kernel_size=(2, 2), stride=(1, 1), input_shape=(3, 3, 3)),
        Flatten("flat", input_shape=(3, 2, 2)),
        Affine("fc1", weight=Dense(u((6, 12), -0.5, 1.5)), bias=u(6, 0, 0.2)),
        LIF("lif", tau=u(6, 5e-3, 2e-2), r=u(6, 1, 2), v_leak=u(6, -0.05, 0.05), v_threshold=u(6, 0.3, 0.6),
            v_reset=u(6, -0.1, 0.0), reset_mode="zero", shape=(6,)),
        Linear("rec", weight=Dense(u((6, 6), -0.3, 0.3))),
        Linear("fc2", weight=Dense(u((5, 6), 0.0, 2.0))),
        CubaLIF("cuba", tau_syn=u(5, 2e-3, 5e-3), tau_mem=u(5, 5e-3, 2e-2), r=u(5, 1, 3), v_leak=np.zeros(5),
                v_threshold=u(5, 0.2, 0.4), v_reset=np.zeros(5), w_in=u(5, 1, 2), reset_mode="subtract", shape=(5,)),
        Scale("scale", scale=u(5, 0.5, 2.0), shape=(5,)),
        Threshold("thr", threshold=u(5, 0.2, 0.8), shape=(5,)),
        Delay("delay", delay=dt * r.integers(0, 4, 5), shape=(5,)),
        LI("li", tau=u(5, 5e-3, 2e-2), r=u(5, 1, 2), v_leak=np.zeros(5), shape=(5,)),
        Output("out_a", shape=(5,)),
        Linear("fc3", weight=Dense(u((4, 5), -1, 1))),
        Integrator("integ", r=u(4, 0.5, 1.5), shape=(4,)),
        Output("out_b", shape=(4,)),
        Input("seq", shape=(2, 10)),
        Conv1d("conv1", weight=u((4, 2, 3), -1, 1), bias=u(4, 0, 0.1), stride=1, padding=0, input_shape=(2, 10)),
        Flatten("flat1", input_shape=(4, 8)),
        Linear("fc4", weight=Dense(u((3, 32), -0.5, 0.5))),
        CubaLI("cli", tau_syn=u(3, 2e-3, 5e-3), tau_mem=u(3, 5e-3, 2e-2), r=u(3, 1, 2), v_leak=np.zeros(3),
               w_in=u(3, 1, 2), shape=(3,)),
        Output("out_c", shape=(3,)),
    ]
    edges = [("img", "conv"), ("conv", "if1"), ("if1", "sum"), ("sum", "avg"), ("avg", "flat"), ("flat", "fc1"),
             ("fc1", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "fc2"), ("fc2", "cuba"), ("cuba", "scale"),
             ("scale", "thr"), ("thr", "delay"), ("delay", "li"), ("li", "out_a"), ("cuba", "fc3"),
             ("fc3", "integ"), ("integ", "out_b"), ("seq", "conv1"), ("conv1", "flat1"), ("flat1", "fc4"),
             ("fc4", "cli"), ("cli", "out_c")]
    return Graph(nodes, edges, dt=dt, metadata={"factory": "graph_every_node_type", "seed": str(seed)})


# ------------------------------------------------------------------------ compiler (passes, partition, benchmarks)
def random_lif_graph(sizes, density: float = 1.0, seed: SeedLike = 0, dt: float = 1e-3, tau: float = 0.02,
                     threshold: float = 1.0, storage: str = "dense", recurrent: bool = False,
                     reset_mode: str = "zero", gain: float = 1.0):
    """A feed-forward LIF network ``Input(sizes[0]) -> Linear -> LIF(sizes[1]) -> ... -> Output`` (IR Graph).

    ``storage``: "dense" (Dense weights), "csr" (each synapse kept with probability ``density``) or "structured"
    (rows and columns removed with probability 1 - density, Structured storage). Weights are normal with standard
    deviation ``gain * threshold * tau / dt / sqrt(fan_in * density)`` so that layers are neither silent nor
    saturated. ``recurrent``: add a recurrent Linear on the first hidden layer.
    """
    from .ir import LIF, Csr, Dense, Graph, Input, Linear, Output, Structured
    r = rng(seed)
    nodes = [Input("input", shape=(sizes[0],))]
    edges = []
    prev = "input"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        std = gain * threshold * tau / dt / np.sqrt(max(n_in * max(density, 1e-9), 1.0))
        if storage == "dense":
            w = Dense(r.normal(0.0, std, (n_out, n_in)))
        elif storage == "csr":
            rows_l, cols_l = [], []
            for a in range(0, n_out, 1024):  # row blocks keep the mask small for wide layers
                m = r.random((min(1024, n_out - a), n_in)) < density
                rr, cc = np.nonzero(m)
                rows_l.append(rr + a)
                cols_l.append(cc)
            rows, cols = np.concatenate(rows_l), np.concatenate(cols_l)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_out))])
            w = Csr((n_out, n_in), indptr, cols, r.normal(0.0, std, rows.size))
        elif storage == "structured":
            w = Structured(r.normal(0.0, std, (n_out, n_in)), row_mask=r.random(n_out) < density,
                           col_mask=r.random(n_in) < density)
        else:
            raise ValueError(f"unknown storage {storage!r}")
        lin, pop = f"fc{k}", f"lif{k}"
        nodes += [Linear(lin, weight=w), LIF(pop, shape=(n_out,), tau=tau, v_threshold=threshold,
                                             reset_mode=reset_mode)]
        edges += [(prev, lin), (lin, pop)]
        if recurrent and k == 0:
            std_r = 0.5 * std
            nodes.append(Linear("rec0", weight=Dense(r.normal(0.0, std_r, (n_out, n_out)))))
            edges += [(pop, "rec0"), ("rec0", pop)]
        prev = pop
    nodes.append(Output("output", shape=(sizes[-1],)))
    edges.append((prev, "output"))
    return Graph(nodes, edges, dt=dt)


# ---------------------------------------------------------------------------------------------------- LNP
def lnp_random_net(n: int, seed: SeedLike = 0, *, rec_gain: float = 0.5, cuba: bool = True, dt: float = 1e-3,
                   tau_mem: tuple = (2e-3, 30e-3), tau_syn: tuple = (1e-3, 5e-3)):
    """A random recurrent layer for LNP tests: ``RecurrentNet`` with log-uniform τ_mem (and τ_syn when ``cuba``)
    in the given ranges (s), θ = 1, zero diagonal and ``W ~ N(0, rec_gain²/n)``."""
    from .prune.lyapunov import RecurrentNet

    g = rng(seed)
    tm = np.exp(g.uniform(np.log(tau_mem[0]), np.log(tau_mem[1]), n))
    ts = np.exp(g.uniform(np.log(tau_syn[0]), np.log(tau_syn[1]), n)) if cuba else None
    w = g.normal(0.0, rec_gain / np.sqrt(n), (n, n))
    np.fill_diagonal(w, 0.0)
    return RecurrentNet(w, np.maximum(tm, dt), np.ones(n), dt, tau_syn=None if ts is None else np.maximum(ts, dt))


# ---------------------------------------------------------------------------------------------- integer core
# Random integer Programs for the reference simulator, the Lava backend and their bit-exactness tests/benchmarks.
_STORAGES = ("dense", "csr", "structured")


def _int_weights(r: np.random.Generator, n_out: int, n_in: int, storage: str, density: float, lo: int, hi: int):
    """Integer weight storage of the given kind with values drawn uniformly from [lo, hi] (within [-256, 255])."""
    from .ir.storage import Csr, Dense, Structured
    vals = r.integers(lo, hi + 1, size=(n_out, n_in))
    if storage == "dense":
        return Dense(vals.astype(np.int16))
    if storage == "csr":
        mask = r.random((n_out, n_in)) < density
        return Csr.from_dense(vals.astype(np.int16), mask=mask)
    if storage == "structured":
        bh, bw = int(r.integers(1, 4)), int(r.integers(1, 4))
        grid = (-(-n_out // bh), -(-n_in // bw))
        return Structured(vals.astype(np.int16), row_mask=r.random(n_out) < max(density, 0.5),
                          col_mask=r.random(n_in) < max(density, 0.5), block_shape=(bh, bw),
                          block_mask=r.random(grid) < max(density, 0.5))
    raise ValueError(f"unknown storage {storage!r}")


def int_program(sizes=(12, 10, 6), *, seed: SeedLike = 0, storage: str = "dense", density: float = 0.4,
                recurrent: bool = False, skip: bool = False, graded_bits: int = 0, max_delay: int = 0,
                reset_mode: str = "zero", per_neuron: bool = True, extreme: bool = False, readout: bool = False,
                sign_modes=("mixed",), weight_bits=(8,), weight_exp=(0, 0), vth_range=None,
                name_prefix: str = "g", v_init: bool = False):
    """A random integer :class:`~toolchain.program.Program` ``in -> g0 -> g1 -> ...`` (one group per entry of
    ``sizes[1:]``), built directly (no compiler), for the bit-exactness tests and the simulator benchmarks.

    ``storage``: "dense", "csr", "structured" or "mixed" (random per synapse group). ``recurrent``: every hidden
    group also projects onto itself. ``skip``: an extra synapse group from the input port to the last group (two
    synapse groups summing into one ``a_in``). ``graded_bits``: ``num_message_bits`` of the input port.
    ``max_delay``: each synapse group draws a delay in [0, max_delay]. ``reset_mode``: "zero", "subtract" or
    "mixed" (random per group). ``per_neuron``: du, dv, vth differ per neuron. ``sign_modes``/``weight_bits``:
    drawn per synapse group; weights are drawn from the whole 9-bit range of the sign mode's side (Lava clips
    and truncates them). ``weight_exp``: (lo, hi) inclusive range drawn per synapse group. ``extreme``: draw every
    neuron parameter from its full documented range (decays 0 and 4095, thresholds up to 2^17 - 1, biases with
    exponents up to 7) so that wrap-around and saturation happen. ``readout``: the last group does not spike
    (``spiking=False``, threshold at its maximum). ``vth_range``: (lo, hi) for thresholds (default: scaled to
    the fan-in so that groups neither stay silent nor saturate). ``v_init``: every group starts at random
    voltages (within ±2 thresholds; the whole 24-bit range with ``extreme``), drawn after everything else so that
    the rest of the Program is the one drawn without it.
    """
    from .program import InputPort, NeuronGroup, Program, SynapseGroup
    r = rng(seed)
    sizes = [int(s) for s in sizes]
    port = InputPort("in", (sizes[0],), num_message_bits=int(graded_bits))
    groups, synapses = [], []
    names = [f"{name_prefix}{k}" for k in range(len(sizes) - 1)]

    def pick_storage() -> str:
        return _STORAGES[int(r.integers(0, 3))] if storage == "mixed" else storage

    def make_syn(name: str, src: str, dst: str, n_out: int, n_in: int, rec: bool = False):
        mode = str(sign_modes[int(r.integers(0, len(sign_modes)))])
        lo, hi = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-256, 0)}[mode]
        if mode == "mixed" and not extreme:
            lo, hi = -120, 140  # a slight excitatory bias keeps deep layers active
        w = _int_weights(r, n_out, n_in, pick_storage(), density, lo, hi)
        return SynapseGroup(name, src, dst, w, weight_exp=int(r.integers(weight_exp[0], weight_exp[1] + 1)),
                            num_weight_bits=int(weight_bits[int(r.integers(0, len(weight_bits)))]),
                            sign_mode=mode, delay=int(r.integers(0, max_delay + 1)), recurrent=rec)

    prev, prev_n = "in", sizes[0]
    for k, (name, n) in enumerate(zip(names, sizes[1:])):
        last = k == len(names) - 1
        m = n if per_neuron else 1
        fan = prev_n * (density if storage != "dense" else 1.0) + (n if recurrent and not last else 0)
        if extreme:
            du = r.choice([0, 1, 4095, int(r.integers(0, 4096))], size=m) if r.random() < 0.5 else \
                r.integers(0, 4096, size=m)
            dv = r.choice([0, 4095, int(r.integers(0, 4096))], size=m) if r.random() < 0.5 else \
                r.integers(0, 4096, size=m)
            vth = r.integers(0, 2 ** 17, size=m) if r.random() < 0.5 else r.integers(0, 200, size=m)
            bias_mant = r.integers(-4096, 4096, size=n)
            bias_exp = r.integers(0, 8, size=n)
        else:
            du = r.integers(200, 3000, size=m)
            dv = r.integers(100, 2000, size=m)
            lo_v, hi_v = vth_range if vth_range is not None else (int(4 + 2 * fan), int(40 + 30 * fan))
            vth = r.integers(lo_v, max(hi_v, lo_v + 1), size=m)
            bias_mant = r.integers(-64, 64, size=n) * (r.random(n) < 0.3)
            bias_exp = r.integers(0, 3, size=n)
        rm = reset_mode if reset_mode != "mixed" else ("zero", "subtract")[int(r.integers(0, 2))]
        spiking = not (readout and last)
        if not spiking:
            vth = np.full(m, 2 ** 17 - 1)
        groups.append(NeuronGroup(name, (n,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                                  reset_mode=rm, spiking=spiking))
        synapses.append(make_syn(f"w_{prev}_{name}", prev, name, n, prev_n))
        if recurrent and not last:
            synapses.append(make_syn(f"w_{name}_{name}", name, name, n, n, rec=True))
        prev, prev_n = name, n
    if skip and len(names) > 1:
        synapses.append(make_syn(f"w_in_{names[-1]}", "in", names[-1], sizes[-1], sizes[0]))
    if v_init:
        lim = 2 ** 23 - 1
        for k, g in enumerate(groups):
            span = lim if extreme else np.minimum(2 * (g.vth.astype(np.int64) << 6) + 64, lim)
            groups[k] = dataclasses.replace(g, v_init=np.clip(
                np.round((2 * r.random(g.size) - 1) * span), -lim, lim).astype(np.int64))
    return Program(groups, synapses, [port], output=names[-1], metadata={"factory": "int_program",
                                                                          "seed": str(seed)})


def int_inputs(program, batch: int, steps: int, rate: float = 0.3, seed: SeedLike = 0) -> np.ndarray:
    """Input for the first input port of ``program``: (batch, steps, *shape) int32; binary spikes with
    probability ``rate``, or graded payloads uniform in [1, 2^m - 1] with probability ``rate`` (zero otherwise)."""
    r = rng(seed)
    port = program.inputs[0]
    shape = (batch, steps) + tuple(port.shape)
    on = r.random(shape) < rate
    if port.num_message_bits == 0:
        return on.astype(np.int32)
    hi = 2 ** port.num_message_bits - 1
    return (on * r.integers(1, hi + 1, size=shape)).astype(np.int32)


def random_path_case(seed: int, batches=(3, 10), steps: int = 18):
    """A random integer Program and active inputs for the simulator path tests (``seed`` 0..15 covers every
    storage, recurrence, skips, graded inputs of 3/8/24 bits, delays, reset modes, extreme parameters with wraps and
    saturation, readouts, v_init, all sign modes, weight widths and exponents, low and high activity); the batch is
    ``batches[(seed // 2) % 2]``. Returns ``(program, x)``."""
    r = rng(100 + seed)
    rate = (0.02, 0.5)[seed % 2]
    batch = batches[(seed // 2) % 2]
    opts = dict(storage=["dense", "csr", "structured", "mixed"][seed % 4], recurrent=seed % 3 != 0,
                skip=seed % 4 == 1, graded_bits=[0, 0, 3, 0, 8, 0, 24, 0][seed % 8], max_delay=[0, 3, 1][seed % 3],
                reset_mode=["zero", "subtract", "mixed"][(seed // 3) % 3], extreme=seed % 5 == 4,
                readout=seed % 6 == 5, v_init=seed % 4 == 2, sign_modes=("mixed", "excitatory", "inhibitory"),
                weight_bits=(4, 8), weight_exp=(-6, 3) if seed % 5 == 4 else (-1, 1))
    sizes = [int(r.integers(20, 60))] + [int(r.integers(4, 30)) for _ in range(int(r.integers(1, 4)))]
    p = int_program(sizes, seed=seed, **opts)
    x = int_inputs(p, batch, 16, rate=rate, seed=seed)
    return make_active(p, x, steps=steps, saturate=seed % 3 == 1), x


def benchmark_program(kind: str = "ff", sizes=(784, 256, 256, 10), seed: SeedLike = 0):
    """The integer Programs of ``benchmarks/sim_vs_lava.py``: "ff" (feed-forward, dense 8-bit mixed-sign
    weights) or "rec" (the same with a recurrent synapse group on every hidden layer)."""
    return int_program(sizes, seed=seed, storage="dense", recurrent=(kind == "rec"), per_neuron=True,
                       reset_mode="zero", sign_modes=("mixed",), weight_bits=(8,), weight_exp=(0, 0))


# ------------------------------------------------------------------------------------------------ SCA (pruning)
def random_channel_masks(model, prune_fraction: float = 0.5, seed: SeedLike = 0):
    """Prune a random subset of every SCA channel group of ``model`` in place (tied layers share the mask; at
    least one channel kept and, where there are two or more, at least one pruned). Returns ``{group: bool mask}``."""
    from .prune import sca as S
    r = rng(seed)
    out = {}
    for g in S.find_channel_groups(model):
        c = model.get_submodule(g.layers[0]).num_channels
        keep = r.random(c) >= prune_fraction
        keep[r.integers(c)] = True
        if c > 1 and keep.all():
            keep[(int(np.flatnonzero(keep)[0]) + 1) % c] = False
        for name in g.layers:
            S.set_channel_mask(model.get_submodule(name), keep)
        out[g.name] = keep
    return out



# ---------------------------------------------------------------------------------------------- cutoff (runtime)
def random_class_outputs(n: int = 300, steps: int = 12, classes: int = 3, seed: SeedLike = 0):
    """Per-step spike outputs of a noisy classifier for exit-calibration tests: ``(outputs, labels)`` with
    outputs (n, steps, classes) float 0/1 — the label's unit fires with a per-sample rate in [0.3, 0.8], the
    others at 0.3, so some samples are easy and some nearly ambiguous — and int64 labels."""
    r = rng(seed)
    labels = r.integers(0, classes, n)
    rates = np.full((n, classes), 0.3)
    rates[np.arange(n), labels] = r.uniform(0.3, 0.8, n)
    outputs = (r.random((n, steps, classes)) < rates[:, None, :]).astype(np.float64)
    return outputs, labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------- bad inputs
#: NIR files :func:`bad_nir_file` writes, each a defect a user can hand the compiler (issue 13)
BAD_NIR_KINDS = ("ff", "cycle", "self_loop", "r_zero", "no_dt", "huge_weight", "many_neurons")


def bad_nir_file(path, kind: str, n: int = 4, neurons: int = 9_000_000):
    """Write a small NIR file of ``kind`` (see :data:`BAD_NIR_KINDS`) to ``path`` with ``nir.write``:

    ``ff``: a valid feed-forward in -> Linear -> LIF -> out (no dt stored) that compiles with ``--dt``;
    ``cycle``: two Affine nodes feeding each other with no neuron between; ``self_loop``: a Linear feeding itself;
    ``r_zero``: a LIF with r = 0; ``no_dt``: as ``ff`` (for the missing-dt message); ``huge_weight``: an Affine
    whose weight dataset *declares* 1,000,000 x 1,000 float32 (4 GB; the file stays small because the data
    is never written); ``many_neurons``: a LIF population whose parameter datasets declare ``neurons`` entries
    (more than a Loihi 2 system's 8.4 M by default; also unwritten). Returns the path."""
    import h5py
    import nir
    from pathlib import Path
    path = Path(path)

    def lif(m: int, r: float = 1.0):
        return nir.LIF(tau=np.full(m, 0.02), r=np.full(m, r), v_leak=np.zeros(m), v_threshold=np.full(m, 0.5))

    inp, out = nir.Input(np.array([n])), nir.Output(np.array([n]))
    w = np.eye(n) * 2.0
    if kind in ("ff", "no_dt", "huge_weight"):
        nodes = {"in": inp, "fc": nir.Affine(w, np.zeros(n)), "lif": lif(n), "out": out}
        edges = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    elif kind == "many_neurons":
        nodes = {"in": inp, "lif": lif(n), "out": out}
        edges = [("in", "lif"), ("lif", "out")]
    elif kind == "cycle":
        nodes = {"in": inp, "a": nir.Affine(w, np.zeros(n)), "b": nir.Affine(w, np.zeros(n)), "lif": lif(n),
                 "out": out}
        edges = [("in", "a"), ("a", "b"), ("b", "a"), ("b", "lif"), ("lif", "out")]
    elif kind == "self_loop":
        nodes = {"in": inp, "fc": nir.Linear(w), "fcs": nir.Linear(w), "lif": lif(n), "out": out}
        edges = [("in", "fc"), ("fc", "lif"), ("lif", "fcs"), ("fcs", "fcs"), ("fcs", "lif"), ("lif", "out")]
    elif kind == "r_zero":
        nodes = {"in": inp, "fc": nir.Linear(w), "lif": lif(n, r=0.0), "out": out}
        edges = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    else:
        raise ValueError(f"unknown kind {kind!r}; kinds: {BAD_NIR_KINDS}")
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))
    if kind == "huge_weight":
        with h5py.File(str(path), "a") as f:
            g = f["node/nodes/fc"]
            del g["weight"]
            g.create_dataset("weight", shape=(1_000_000, 1_000), dtype="f4")  # declared, never written
    if kind == "many_neurons":
        with h5py.File(str(path), "a") as f:
            g = f["node/nodes/lif"]
            for k in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
                del g[k]
                g.create_dataset(k, shape=(neurons,), dtype="f8", fillvalue=0.0 if k in ("v_leak", "v_reset") else
                                 (0.02 if k == "tau" else 1.0))
            for node, key in (("in", "shape"), ("out", "shape")):
                ds = f[f"node/nodes/{node}"]
                for k in list(ds.keys()):
                    if k not in ("type",) and isinstance(ds[k], h5py.Dataset) and ds[k].shape == (1,):
                        ds[k][...] = neurons
    return path


def activity(program, x, steps=None) -> dict:
    """Reference-simulator activity of ``program`` on ``x``: ``{"silent": spiking groups that never spike,
    "saturated": groups whose v reached ±(2^23 - 1)}``."""
    from .sim.reference import simulate
    res = simulate(program, x, steps=steps, record=True)
    lim = 2 ** 23 - 1
    silent = [g for g, grp in program.groups.items() if grp.spiking and not res.spikes[g].any()]
    saturated = [g for g in program.groups if (np.abs(res.v[g].astype(np.int64)) >= lim).any()]
    return {"silent": silent, "saturated": saturated}


def make_active(program, x, steps=None, saturate: bool = False):
    """``program`` changed just enough that every spiking group spikes on ``x`` (and, with ``saturate``, that
    some group's ``v`` reaches the 24-bit bound), so that a bit-exactness test compares activity, not silence.

    With ``saturate`` the largest group's last neuron starts at v = 2^23 - 1 with no voltage decay, the largest
    bias and a threshold of 2^17 (never reached), so it sits on the clip bound (the group needs two neurons or
    more). Then, group by group in order, a group that stays silent gets neurons 0, 1, ... set to threshold 0, the
    largest positive bias (4095 << 7) and u = v = 0 at the start, one at a time until it spikes (activity is
    recounted after each change, since a patched group's spikes can silence a later one). The rest of the Program
    is unchanged; returns the new Program, or raises ``ValueError`` naming the groups that cannot be woken."""
    from .program import Program

    def patch(p, name, idx, **fields):
        g = p.groups[name]
        arrays = {}
        for f, val in fields.items():
            a = np.array(np.broadcast_to(np.asarray(getattr(g, f)), (g.size,)), dtype=np.int64)
            a[idx] = val
            arrays[f] = a
        new = dataclasses.replace(g, **arrays)
        groups = [new if k == name else v for k, v in p.groups.items()]
        return Program(groups, list(p.synapses), list(p.inputs), p.output, target=p.target, dt=p.dt,
                       placement=p.placement, report=p.report, quant_report=p.quant_report, metadata=p.metadata)

    if saturate and not activity(program, x, steps)["saturated"]:
        name = max(program.groups, key=lambda k: program.groups[k].size)
        if program.groups[name].size < 2:
            raise ValueError("saturate needs a group of at least two neurons")
        program = patch(program, name, -1, v_init=2 ** 23 - 1, dv=0, vth=2 ** 17, bias_mant=4095, bias_exp=7)
    # groups in order, activity recounted after every patch: a patched group's new spikes can silence a later
    # group (inhibition), and one neuron can still be held down by a negative start or strong inhibitory input,
    # so the next neuron is tried until the group spikes
    for name in program.groups:
        g = program.groups[name]
        for idx in range(g.size if g.spiking else 0):
            if name not in activity(program, x, steps)["silent"]:
                break
            if saturate and idx == g.size - 1 and int(g.vth[-1]) == 2 ** 17 and int(g.dv[-1]) == 0:
                continue  # the saturating neuron stays as it is
            program = patch(program, name, idx, vth=0, bias_mant=4095, bias_exp=7, v_init=0, u_init=0)
    silent = activity(program, x, steps)["silent"]
    if silent:
        raise ValueError(f"groups {silent} stay silent with every neuron at threshold 0 and the largest bias")
    return program


# ---------------------------------------------------------------------------------------------- fuzzing
#: values a fuzzer puts where a field was (every JSON type, out-of-range numbers, absurd sizes)
FUZZ_JSON_VALUES = (None, -1, 0, 1, 30, -(2 ** 31), 2 ** 40, 1.5, float("inf"), "banana", "", [], [-3], [2 ** 40],
                    {}, True)


def _h5_datasets_and_groups(f) -> tuple:
    import h5py
    sets, groups = [], []
    f.visititems(lambda n, o: (sets if isinstance(o, h5py.Dataset) else groups).append(n))
    return sets, groups


def mutate_nir(src, dst, seed: SeedLike = 0) -> str:
    """Copy the NIR file ``src`` to ``dst`` with one random defect; returns a one-line description.

    Defects: truncated or byte-flipped file; a dataset replaced by NaN/inf/negative/zero values, another shape
    (empty, an extra axis, a scalar), strings, or a huge *declared* shape (never written); a dataset or group
    deleted; an edge to a missing node, a self-loop or a duplicate; a node type changed."""
    import shutil

    import h5py
    r = rng(seed)
    shutil.copyfile(src, dst)
    kind = str(r.choice(["truncate", "flip", "values", "shape", "strings", "declared", "delete", "edges", "type"]))
    if kind in ("truncate", "flip"):
        data = bytearray(open(dst, "rb").read())
        if kind == "truncate":
            cut = int(r.integers(0, len(data)))
            data = data[:cut]
            desc = f"truncated to {cut} bytes"
        else:
            idx = r.integers(0, len(data), size=int(r.integers(1, 16)))
            for i in idx:
                data[i] = int(r.integers(0, 256))
            desc = f"{idx.size} bytes changed"
        with open(dst, "wb") as fh:
            fh.write(bytes(data))
        return desc
    with h5py.File(str(dst), "a") as f:
        sets, groups = _h5_datasets_and_groups(f)
        params = [s for s in sets if not s.endswith("/type") and s != "version" and s.rsplit("/", 1)[-1] != "edges"]
        edge_sets = [s for s in sets if s.rsplit("/", 1)[-1] == "edges" and f[s].ndim == 2]
        if kind == "edges" and edge_sets:
            g = str(r.choice(edge_sets))
            e = np.asarray(f[g][()]).astype(object)
            names = [n.split("/")[-1] for n in groups if n.count("/") >= 2 and n.rsplit("/", 2)[-2] == "nodes"]
            how = str(r.choice(["missing", "self", "duplicate", "empty"]))
            extra = {"missing": [[names[0].encode(), b"nowhere"]], "self": [[names[-1].encode()] * 2],
                     "duplicate": [list(e[0])] if len(e) else [], "empty": []}[how]
            new = np.array([list(x) for x in e] + extra, dtype=object) if how != "empty" else np.zeros((0, 2), "S1")
            del f[g]
            f.create_dataset(g, data=new.astype("S") if new.size else new)
            return f"edges: {how} ({g})"
        if kind in ("type", "edges"):  # (a file without an edge list gets a changed type instead)
            g = str(r.choice([s for s in sets if s.endswith("/type")]))
            val = str(r.choice(["LIF", "Affine", "Conv2d", "NIRGraph", "Banana", ""]))
            del f[g]
            f.create_dataset(g, data=val.encode())
            return f"{g} = {val!r}"
        if kind == "delete":
            target = str(r.choice(params + [g for g in groups if g.count("/") >= 3]))
            del f[target]
            return f"deleted {target}"
        g = str(r.choice(params))
        old = f[g]
        shape = old.shape
        del f[g]
        if kind == "values":
            fill = float(r.choice([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e30, -1e30]))
            f.create_dataset(g, data=np.full(shape, fill))
            return f"{g} = {fill} everywhere"
        if kind == "shape":
            new_shape = [(0,), tuple(shape) + (2,), (), (3, 5)][int(r.integers(0, 4))]
            f.create_dataset(g, data=np.ones(new_shape))
            return f"{g} shape {shape} -> {new_shape}"
        if kind == "strings":
            f.create_dataset(g, data=b"banana")
            return f"{g} = 'banana'"
        big = (10 ** 9,) if len(shape) <= 1 else (10 ** 6, 10 ** 4)
        f.create_dataset(g, shape=big, dtype="f8")  # declared only: nothing is written
        return f"{g} declared as {big}"


def _json_paths(doc, prefix=()) -> list:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("report", "quant_report"):
                continue
            out.append(prefix + (k,))
            out += _json_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:4]):
            out.append(prefix + (i,))
            out += _json_paths(v, prefix + (i,))
    return out


def mutate_build(src, dst, seed: SeedLike = 0) -> str:
    """Copy the build folder ``src`` to ``dst`` with one random defect; returns a one-line description.

    Defects: a ``program.json`` field (any depth, reports excepted) set to another JSON value
    (:data:`FUZZ_JSON_VALUES`) or deleted; an array of ``arrays.npz`` replaced by another dtype, shape or
    out-of-range values — with the hash in ``program.json`` updated half of the time, so that the checks behind
    the hash are reached too; a file truncated or deleted."""
    import hashlib
    import json
    import shutil
    from pathlib import Path

    from .build_io import npz_bytes
    r = rng(seed)
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst)
    doc = json.loads((dst / "program.json").read_text())
    kind = str(r.choice(["json", "json", "json", "delete_key", "array", "array", "truncate", "remove"]))
    if kind in ("json", "delete_key"):
        paths = _json_paths(doc)
        path = paths[int(r.integers(0, len(paths)))]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if kind == "delete_key" and isinstance(parent, dict):
            del parent[path[-1]]
            desc = f"deleted {'/'.join(map(str, path))}"
        else:
            val = FUZZ_JSON_VALUES[int(r.integers(0, len(FUZZ_JSON_VALUES)))]
            parent[path[-1]] = val
            desc = f"{'/'.join(map(str, path))} = {val!r}"
        (dst / "program.json").write_text(json.dumps(doc))
        return desc
    if kind in ("truncate", "remove"):
        name = str(r.choice(["program.json", "arrays.npz"]))
        if kind == "remove":
            (dst / name).unlink()
            return f"removed {name}"
        data = (dst / name).read_bytes()
        cut = int(r.integers(0, len(data)))
        (dst / name).write_bytes(data[:cut])
        return f"{name} truncated to {cut} bytes"
    with np.load(dst / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = sorted(arrays)[int(r.integers(0, len(arrays)))]
    a = arrays[key]
    how = str(r.choice(["float", "shape", "range", "empty", "negative"]))
    arrays[key] = {"float": lambda: a.astype(np.float64) + 0.5, "shape": lambda: np.resize(a, a.size + 3),
                   "range": lambda: np.full(a.shape, 2 ** 30, np.int64), "empty": lambda: a[:0],
                   "negative": lambda: -np.abs(a.astype(np.int64)) - 5}[how]()
    blob = npz_bytes(arrays)
    (dst / "arrays.npz").write_bytes(blob)
    rehash = bool(r.integers(0, 2))
    if rehash:
        doc["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
        (dst / "program.json").write_text(json.dumps(doc))
    return f"array {key}: {how}{' (hash updated)' if rehash else ''}"


def mutate_input(x: np.ndarray, seed: SeedLike = 0) -> tuple:
    """``(array, description)``: the input ``x`` (B, T, n) with one random defect — a float dtype (fractions,
    NaN), negative or too large values, another shape (1-D, an extra axis, empty batch or time, wrong width), a
    0-d array, an int64 beyond int32, a bool array (valid), or a single sample without its batch axis (valid)."""
    r = rng(seed)
    how = str(r.choice(["float", "nan", "negative", "two", "1d", "extra_axis", "empty_batch", "empty_time",
                        "width", "scalar", "int64_big", "bool", "no_batch"]))
    a = np.asarray(x)
    out = {"float": lambda: a.astype(np.float64) + 0.25, "nan": lambda: np.where(a > 0, np.nan, 0.0),
           "negative": lambda: -a.astype(np.int32), "two": lambda: a.astype(np.int32) * 2,
           "1d": lambda: a.reshape(-1), "extra_axis": lambda: a[..., None],
           "empty_batch": lambda: a[:0], "empty_time": lambda: a[:, :0], "width": lambda: a[..., :-1],
           "scalar": lambda: np.array(1), "int64_big": lambda: a.astype(np.int64) * (2 ** 40),
           "bool": lambda: a.astype(bool), "no_batch": lambda: a[0]}[how]()
    return out, how
