"""Sigma-delta (SDNN) networks with graded spikes (issue 16): bit-exactness, message reduction, netx round trip.

    python benchmarks/sdnn.py [--quick] [--steps N]

The network is an SDNN netx file written here (lava-dl's layout): an SDNN input layer (Delta encoder,
``vThMant`` 2) on a 24x24 frame -> conv 3x3 stride 2, 4 channels (edge kernels: horizontal, vertical, two
diagonals) -> flatten -> dense 32 -> dense 4 with ``sigma_output`` (the readout). It is read with
:func:`toolchain.netx_io.load_netx` into a Program (Delta / SigmaDelta / Sigma groups, graded synapses) and fed a
generated video-like stream: a static texture with two squares moving one pixel every ``hold`` frames and a
little flicker; one frame per step.

Parts (one run, side by side):

1. **Bit-exact.** The reference simulator against our Lava backend (Lava 0.10.0's own ``Delta``, ``SigmaDelta``,
   ``Sigma`` and graded ``Sparse``/``Dense`` processes): every payload, sigma and act of every group at every step
   of a clip (``--quick``: 10 steps, else 24). ``RESULT sdnn_bit_exact 1`` when all equal.
2. **Message reduction.** Messages per frame of the sigma-delta network against the same network run frame by
   frame as a dense ANN, which sends every non-zero activation of every layer (and every non-zero pixel) each
   frame: from one run, counted from the recorded payloads (SDNN: non-zero payloads of the encoder and the
   SigmaDelta layers) and the recorded activations (``act``; frame-by-frame: non-zero inputs of each synaptic
   layer). Also payload bits. ``RESULT sdnn_message_reduction R`` = frame-by-frame messages / SDNN messages per
   frame over the whole stream (the first frame included).
3. **netx round trip.** Program -> ``export_netx`` -> ``load_netx``: the same payloads, sigma and act at every
   step (reference), and lava-dl 0.6.0's own reader of the exported file (``skip_layers=1``, fed our encoder's
   payloads) gives every later layer's payloads, sigma and act. ``RESULT sdnn_netx_roundtrip_exact 1``.
4. **Cores.** The partitioner on Loihi 2 (``hw_targets/loihi2.toml``) with graded messages charged (wider
   synapses, payload routing entries, sigma-delta neuron state; see :mod:`toolchain.passes.partition`), beside the
   same network with LIF neurons and binary spikes (same weights): cores in both placement modes, lower bound,
   synapse memory, output-axon entries and neuron state. ``RESULT sdnn_cores N`` (pack mode) and
   ``RESULT sdnn_lif_equivalent_cores M``. The network is small: both fit one core in pack mode; the resource
   columns show what the graded messages cost.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.fixedpoint_sdn import message_stats  # noqa: E402
from toolchain.netx_io import load_netx, write_netx_layers  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402

W = H = 24


def write_sdnn_net(path: Path, seed: int = 0) -> Path:
    """The benchmark's SDNN netx file (module docstring), written with :func:`write_netx_layers`."""
    rng = np.random.default_rng(seed)
    k = np.array([[[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
                  [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                  [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
                  [[2, 1, 0], [1, 0, -1], [0, -1, -2]]]) * 8
    ho = wo = (W - 3) // 2 + 1
    n_flat = 4 * ho * wo
    layers = [
        {"type": "input", "shape": [1, H, W], "neuron": {"type": "SDNN", "vThMant": 2}},
        {"type": "conv", "shape": [4, ho, wo], "weight": k[:, None].astype(np.float32), "stride": [2, 2],
         "padding": [0, 0], "dilation": [1, 1], "groups": 1, "bias": np.full(4, -2.0, np.float32),
         "neuron": {"type": "SDNN", "vThMant": 8}},
        {"type": "flatten", "shape": [n_flat, 1, 1]},
        {"type": "dense", "shape": [32], "weight": rng.integers(-12, 13, (32, n_flat)).astype(np.float32),
         "bias": rng.integers(-4, 5, 32).astype(np.float32), "neuron": {"type": "SDNN", "vThMant": 16}},
        {"type": "dense", "shape": [4], "weight": rng.integers(-60, 61, (4, 32)).astype(np.float32),
         "neuron": {"type": "SDNN", "vThMant": 1, "sigma_output": True}},
    ]
    return write_netx_layers(path, layers)


def video(steps: int, hold: int = 2, seed: int = 0) -> np.ndarray:
    """(1, steps, W, H, 1) frames in [0, 60]: a static texture, two moving squares, 2% flickering pixels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 12, (W, H))
    out = np.zeros((1, steps, W, H, 1), np.int64)
    for t in range(steps):
        f = base.copy()
        p = (t // hold) % (W - 6)
        f[p:p + 6, 4:10] = 60
        q = (W - 6) - ((t // hold) % (W - 6))
        f[14:20, q:q + 6] = 45
        flick = rng.random((W, H)) < 0.02
        f[flick] = rng.integers(0, 12, int(flick.sum()))
        out[0, t, :, :, 0] = f
    return out


def message_counts(program, res, x: np.ndarray) -> dict:
    """Per layer: SDNN messages and bits (non-zero payloads leaving the layer's source), and the frame-by-frame
    ANN's messages (non-zero activations of the same source)."""
    rows = {}
    names = list(program.groups)
    for name in names:
        g = program.groups[name]
        if g.sdn is None or g.sdn.kind == "sigma":
            continue  # the readout sends nothing onward
        msgs, bits = message_stats(res.spikes[name])
        dense = int(np.count_nonzero(res.v[name]))  # act: what a frame-by-frame ANN sends
        if g.sdn.kind == "delta":
            dense = int(np.count_nonzero(x))  # the frame itself
        rows[name] = (msgs, bits, dense)
    return rows


def lava_part(program, x: np.ndarray, steps: int) -> bool:
    from toolchain.backends.lava import run_lava
    ref = simulate(program, x, steps=steps, record=True)
    lav = run_lava(program, x, steps=steps, record=True)
    mm = ref.first_mismatch(lav)
    if mm is not None:
        print(f"  reference vs Lava: first mismatch at {mm}")
    return mm is None and all(np.array_equal(getattr(ref, f)[g], getattr(lav, f)[g])
                              for g in program.groups for f in ("spikes", "u", "v"))


def roundtrip_part(program, x: np.ndarray, steps: int, tmp: Path) -> tuple:
    from toolchain.backends.lava_dl import run_netx_file
    from toolchain.backends.netx import export_netx, netx_network_args
    out = export_netx(program, tmp / "export.net")
    args = netx_network_args(program)
    q = load_netx(out)
    a, b = simulate(program, x, steps=steps, record=True), simulate(q, x, steps=steps, record=True)
    ref_ok = all(np.array_equal(getattr(a, f)[ga], getattr(b, f)[gb]) for ga, gb in zip(program.groups, q.groups)
                 for f in ("spikes", "u", "v"))
    names = list(q.groups)
    enc = b.spikes[names[0]].reshape((1, steps) + tuple(q.groups[names[0]].shape))
    dl = run_netx_file(out, enc, steps, skip_layers=args.get("skip_layers", 0), record=True)
    dl_ok = len(dl.groups) == len(names) - 1 and all(
        np.array_equal(getattr(b, f)[ours], getattr(dl, f)[theirs])
        for ours, theirs in zip(names[1:], dl.groups) for f in ("spikes", "u", "v"))
    return ref_ok, dl_ok


def lif_equivalent(program):
    """The same network with CUBA LIF groups (the neutral LIF fields that sigma-delta groups carry) and binary
    spike ports: what the partitioner would charge without graded messages."""
    from toolchain.program import Program
    groups = [dataclasses.replace(g, sdn=None) for g in program.groups.values()]
    ports = [dataclasses.replace(q, num_message_bits=0) if q.kind == "spikes" else q for q in program.inputs]
    return Program(groups, program.synapses, ports, program.output, target=program.target, dt=program.dt,
                   metadata=dict(program.metadata))


def cores_part(program) -> dict:
    """Partition the SDNN Program and its LIF equivalent on Loihi 2 (both modes); a row of figures each."""
    from toolchain.passes.checks import check_partitioned
    from toolchain.passes.partition import partition
    from toolchain.targets import load_target
    t = load_target("loihi2")
    rows = {}
    for label, p in (("SDNN (graded)", program), ("LIF equivalent", lif_equivalent(program))):
        q = partition(p, t, mode="pack", compare=True)
        check_partitioned(q, t)
        rep = q.report
        lay = rep["layers"].values()
        rows[label] = {"pack": rep["cores_used"], "halving": rep["modes"]["intel_halving"]["cores_used"],
                       "bound": rep["lower_bound"], "syn_bits": rep["synapse_bits"],
                       "out_axons": sum(v["output_axons"] for v in lay),
                       "state_bits": sum(v["neuron_state_bits"] for v in lay)}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short Lava and lava-dl clips (about a minute or two)")
    ap.add_argument("--steps", type=int, default=None, help="frames of the stream for the message count")
    args = ap.parse_args()
    steps = args.steps or (120 if args.quick else 400)
    clip = 10 if args.quick else 24
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        program = load_netx(write_sdnn_net(tmp / "sdnn.net"))
        x = video(steps)
        print(f"SDNN: {' -> '.join(f'{g.name} {g.neuron} {g.size}' for g in program.groups.values())}; "
              f"{steps} frames of {W}x{H}")
        t0 = time.perf_counter()
        res = simulate(program, x, record=True)
        t_sim = time.perf_counter() - t0
        rows = message_counts(program, res, x)
        table = [("layer (sender)", "kind", "SDNN msgs/frame", "SDNN bits/frame", "frame-by-frame msgs/frame",
                  "ratio")]
        tot_s = tot_d = tot_b = 0
        for name, (m, bits, dense) in rows.items():
            tot_s, tot_d, tot_b = tot_s + m, tot_d + dense, tot_b + bits
            table.append((name, program.groups[name].neuron, f"{m / steps:.1f}", f"{bits / steps:.0f}",
                          f"{dense / steps:.1f}", f"{dense / max(m, 1):.2f}"))
        table.append(("all", "", f"{tot_s / steps:.1f}", f"{tot_b / steps:.0f}", f"{tot_d / steps:.1f}",
                      f"{tot_d / max(tot_s, 1):.2f}"))
        print(f"\n2. messages (reference simulator, {t_sim:.1f} s for {steps} steps)")
        print("\n".join(table_lines(table)))
        reduction = tot_d / max(tot_s, 1)

        print(f"\n1. bit-exact: reference vs Lava 0.10.0 sdn processes, {clip} steps")
        t0 = time.perf_counter()
        exact = lava_part(program, x[:, :clip], clip)
        print(f"  every payload, sigma, act of {len(program.groups)} groups at every step equal: {exact} "
              f"({time.perf_counter() - t0:.0f} s)")

        print(f"\n3. netx round trip (export -> import; lava-dl 0.6.0's reader of the exported file), {clip} steps")
        t0 = time.perf_counter()
        ref_ok, dl_ok = roundtrip_part(program, x[:, :clip], clip, tmp)
        print(f"  re-imported Program equal: {ref_ok}; lava-dl reader equal: {dl_ok} "
              f"({time.perf_counter() - t0:.0f} s)")
        print("\n4. cores on loihi2 (graded messages charged; LIF equivalent: same weights, binary spikes)")
        crow = cores_part(program)
        table = [("network", "cores (pack)", "cores (intel_halving)", "lower bound", "synapse bits",
                  "out-axon entries", "neuron state bits")]
        for label, r in crow.items():
            table.append((label, str(r["pack"]), str(r["halving"]), str(r["bound"]), str(r["syn_bits"]),
                          str(r["out_axons"]), str(r["state_bits"])))
        g, lf = crow["SDNN (graded)"], crow["LIF equivalent"]
        table.append(("ratio SDNN / LIF", f"{g['pack'] / lf['pack']:.2f}", f"{g['halving'] / lf['halving']:.2f}",
                      f"{g['bound'] / lf['bound']:.2f}", f"{g['syn_bits'] / max(lf['syn_bits'], 1):.2f}",
                      f"{g['out_axons'] / max(lf['out_axons'], 1):.2f}",
                      f"{g['state_bits'] / max(lf['state_bits'], 1):.2f}"))
        print("\n".join(table_lines(table)))
    print(f"\nRESULT sdnn_bit_exact {int(exact)}")
    print(f"RESULT sdnn_message_reduction {reduction:.2f}")
    print(f"RESULT sdnn_netx_roundtrip_exact {int(ref_ok and dl_ok)}")
    print(f"RESULT sdnn_cores {g['pack']}")
    print(f"RESULT sdnn_lif_equivalent_cores {lf['pack']}")


if __name__ == "__main__":
    main()
