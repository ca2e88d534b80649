"""Run a netx file through lava-dl 0.6.0's *own* reader (``lava.lib.dl.netx.hdf5.Network``) on Lava's CPU
``fixed_pt`` models — the independent oracle for netx import and export: a Program read from (or written to) a
netx file must give, step for step, what lava-dl builds from that file.

    >>> res = run_netx_file("network.net", x, steps=15, reset_interval=16, record=True)
    >>> res.spikes["layer1"]    # (B, steps, n) for the k-th layer lava-dl built, flattened in (W, H, C) C order

Inputs follow the conventions of :func:`toolchain.netx_io.load_netx`: when the file's first layer is an input
layer with neurons, ``x`` is that layer's ``bias_mant`` per sample (B, W, H, C) — set as
``net.in_layer.neuron.bias_mant.init`` exactly as lava-dl's PilotNet hardware test does; otherwise ``x`` is
binary (or graded) spikes (B, T, *input shape) fed through a ``RingBuffer`` into ``net.inp``. ``u`` and ``v`` are
read with ``Var.get()`` after every step (the network runs one step at a time when they are recorded).

Sigma-delta (SDNN) layers: ``spikes`` holds their int32 payloads, ``u`` their ``sigma`` and ``v`` their ``act``
(``sigma`` for a ``Sigma``), as :class:`~toolchain.program.SigmaDeltaParams` records them. An SDNN file is run as
lava-dl runs SDNNs, ``skip_layers=1`` (its input ``Delta`` is unconnected in lava-dl) with ``x`` the encoder's
payloads (B, T, *input shape), e.g. the input group's payloads from the reference simulator.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Union

import numpy as np

from ..errors import ToolchainError
from ..sim.record import SimResult

__all__ = ["run_netx_file", "layer_names"]


def layer_names(net: object) -> list:
    """``layer<k>`` for the k-th block lava-dl built (the Program from :func:`load_netx` has its groups in the same
    order)."""
    return [f"layer{k}" for k in range(len(net.layers))]  # type: ignore[attr-defined]


def _sdn_vars(neuron: object) -> Optional[tuple]:
    """("sigma", "act") / ("sigma", "sigma") for Lava's sdn processes, None for a LIF."""
    kind = type(neuron).__name__
    if kind in ("SigmaDelta", "Delta"):
        return ("sigma", "act")
    if kind == "Sigma":
        return ("sigma", "sigma")
    return None


def run_netx_file(path: Union[str, os.PathLike], x: np.ndarray, steps: int, reset_interval: Optional[int] = None,
                  reset_offset: int = 0, input_message_bits: int = 0, record: bool = True,
                  skip_layers: int = 0) -> SimResult:
    """Build ``Network(net_config=path, reset_interval=..., ...)`` per sample, drive it and record every layer.

    Returns a :class:`~toolchain.sim.record.SimResult` whose groups are named ``layer<k>``; ``output`` is the last
    layer's spikes.
    """
    from .lava import _lava
    L = _lava()
    from lava.lib.dl import netx
    x = np.asarray(x)
    spikes: Dict[str, np.ndarray] = {}
    u: Dict[str, np.ndarray] = {}
    v: Dict[str, np.ndarray] = {}
    names: list = []
    for b in range(x.shape[0]):
        net = netx.hdf5.Network(net_config=os.fspath(path), reset_interval=reset_interval,
                                reset_offset=reset_offset, input_message_bits=input_message_bits,
                                skip_layers=skip_layers)
        names = layer_names(net)
        bias_input = type(net.in_layer).__name__ == "Input"
        if bias_input:
            net.in_layer.neuron.bias_mant.init = np.asarray(x[b]).astype(np.int32)
        else:
            data = np.asarray(x[b]).reshape(x.shape[1], -1)
            if data.shape[0] < steps:
                data = np.concatenate([data, np.zeros((steps - data.shape[0], data.shape[1]), data.dtype)])
            src = L["Source"](data=np.ascontiguousarray(data[:steps].T.astype(np.int32)))
            shape = tuple(net.inp.shape)
            src.s_out.reshape(shape).connect(net.inp) if len(shape) > 1 else src.s_out.connect(net.inp)
        sinks = []
        for layer in net.layers:
            sink = L["Sink"](shape=layer.out.shape, buffer=steps)
            layer.out.connect(sink.a_in)
            sinks.append(sink)
        try:
            if record:
                for t in range(steps):
                    net.run(condition=L["RunSteps"](num_steps=1), run_cfg=L["Loihi2SimCfg"](select_tag="fixed_pt"))
                    for name, layer in zip(names, net.layers):
                        n = int(np.prod(layer.out.shape))
                        u.setdefault(name, np.zeros((x.shape[0], steps, n), np.int32))
                        v.setdefault(name, np.zeros((x.shape[0], steps, n), np.int32))
                        uv = _sdn_vars(layer.neuron) or ("u", "v")
                        u[name][b, t] = np.asarray(getattr(layer.neuron, uv[0]).get()).reshape(-1)
                        v[name][b, t] = np.asarray(getattr(layer.neuron, uv[1]).get()).reshape(-1)
            else:
                net.run(condition=L["RunSteps"](num_steps=steps), run_cfg=L["Loihi2SimCfg"](select_tag="fixed_pt"))
            for name, sink, layer in zip(names, sinks, net.layers):
                data = np.asarray(sink.data.get())  # (*shape, steps)
                graded = _sdn_vars(layer.neuron) is not None
                spikes.setdefault(name, np.zeros((x.shape[0], steps, int(np.prod(layer.out.shape))),
                                                 np.int32 if graded else np.uint8))
                flat = np.moveaxis(data, -1, 0).reshape(steps, -1)
                spikes[name][b] = flat if graded else flat != 0
        except Exception as exc:  # noqa: BLE001 - lava-dl/Lava failures are reported with the file
            raise ToolchainError(f"lava-dl's netx reader failed: {type(exc).__name__}: {exc}",
                                 file=os.fspath(path)) from exc
        finally:
            try:
                net.stop()
            except Exception:  # noqa: BLE001 - a failed runtime may already be gone
                pass
    out = names[-1]
    return SimResult(spikes=spikes, u=u, v=v, output=spikes[out], output_group=out, output_kind="spikes",
                     steps_run=np.full(x.shape[0], steps, np.int64), backend="lava-dl", groups=names)
