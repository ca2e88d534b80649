"""Seeded random factories used by the tests, benchmarks and examples (the one place for them).

Every factory takes an explicit ``seed`` (or ``numpy.random.Generator``) so that a failing case can be replayed.
"""
from __future__ import annotations

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
