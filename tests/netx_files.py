"""Writers of small netx (lava-dl HDF5) files for the tests: every layer type and field lava-dl 0.6.0's reader
takes, written the way lava-dl's own exporters lay them out (``shape`` reversed (C, H, W), ``type`` as a 1-element
bytes array, neuron parameters in a ``neuron`` group)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from toolchain.netx_io import write_netx_layers


def neuron(i_decay: Any = 1024, v_decay: Any = 512, vth: Any = 80, ntype: str = "CUBA") -> Dict[str, Any]:
    return {"type": ntype, "iDecay": i_decay, "vDecay": v_decay, "vThMant": vth}


def write_net(path: Path, layers: List[Dict[str, Any]]) -> Path:
    """``layers``: dicts with ``type`` and the datasets of the layer (``neuron`` a dict, or None for none); every
    neuron group gets ``refDelay`` 1 (as lava-dl's exporters write it) unless it gives its own. Written by the
    package's :func:`toolchain.netx_io.write_netx_layers`."""
    return write_netx_layers(path, [lay if lay.get("neuron") is None
                                    else {**lay, "neuron": {**lay["neuron"],
                                                            "refDelay": lay["neuron"].get("refDelay", 1)}}
                                    for lay in layers])


def conv_net(path: Path, rng: np.random.Generator, reset: bool = False, padding=(1, 0), dilation=(1, 2),
             groups: int = 2, per_channel: bool = True) -> Path:
    """Input layer with neurons (8x6x4 grid, driven by its bias) -> conv (stride (2,1), padding, dilation,
    groups, per-channel neuron parameters) -> flatten -> dense -> dense without a neuron group."""
    c_in, c_out = 4, 6
    w_in, h_in = 8, 6
    kh, kw = 3, 2
    sy, sx = 2, 1
    ho = (h_in + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // sy + 1
    wo = (w_in + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // sx + 1
    n_flat = wo * ho * c_out
    vth = rng.integers(20, 60, c_out) if per_channel else 40
    return write_net(path, [
        {"type": "input", "shape": [c_in, h_in, w_in], "neuron": neuron(4096, 1024, 25), "bias": 30.0,
         "weight": 40.0},
        {"type": "conv", "shape": [c_out, ho, wo], "weight": rng.integers(-12, 13, (c_out, c_in // groups, kh, kw)),
         "stride": [sy, sx], "padding": list(padding), "dilation": list(dilation), "groups": groups,
         "bias": rng.integers(-8, 9, c_out).astype(np.float32), "neuron": neuron(3000, 900, vth)},
        {"type": "flatten", "shape": [n_flat, 1, 1]},
        {"type": "dense", "shape": [12], "weight": rng.integers(-20, 21, (12, n_flat)).astype(np.float32),
         "bias": rng.integers(-3, 4, 12).astype(np.float32), "neuron": neuron(2048, 512, rng.integers(30, 90, 12))},
        {"type": "dense", "shape": [3], "weight": rng.integers(-30, 31, (3, 12)).astype(np.float32)},
    ])


def dense_rec_net(path: Path, rng: np.random.Generator, delay: Optional[str] = None, n_in: int = 10) -> Path:
    """Spike input (no input neurons) -> dense with delays of the given form (scalar, per output, per input, per
    synapse) -> dense_rec -> dense (one output neuron, per-neuron parameters)."""
    lays: List[Dict[str, Any]] = [{"type": "input", "shape": [n_in]}]
    d1: Dict[str, Any] = {"type": "dense", "shape": [8], "weight": rng.integers(-60, 61, (8, n_in)),
                          "neuron": neuron(rng.integers(500, 4000, 8), rng.integers(0, 4000, 8), 30)}
    if delay == "scalar":
        d1["delay"] = 3
    elif delay == "axonal":
        d1["delay"] = rng.integers(0, 4, 8)
    elif delay == "input":
        d1["delay"] = rng.integers(0, 4, n_in)
    elif delay == "synapse":
        d1["delay"] = rng.integers(0, 4, (8, n_in))
    lays.append(d1)
    lays.append({"type": "dense_rec", "shape": [6], "weight": rng.integers(-50, 51, (6, 8)),
                 "weight_rec": rng.integers(-30, 31, (6, 6)), "bias": rng.integers(-2, 3, 6).astype(np.float32),
                 "neuron": neuron(1500, 700, 35)})
    lays.append({"type": "dense", "shape": [2], "weight": rng.integers(0, 90, (2, 6)),
                 "neuron": neuron([4096, 100], [0, 3000], [131071, 20])})
    return write_net(path, lays)
