"""Conversion fidelity (issue 12): float source vs integer program on the NIR-paper graphs and on networks exported
by snnTorch and Norse in this script, per layer, with the attribution of the drift (:mod:`toolchain.fidelity`).

Rockpool's graph is the file Rockpool 3.1 wrote once (its NIR export needs nir<=1.0.4; generator:
``tests/data/frameworks/make_rockpool.py``); Sinabs 3.1.3's exporter fails with the nirtorch installed here, so no
Sinabs network is in the table. For every graph and input rate: the output layer's spike agreement (per sample, step and neuron) of the integer
program with the float source, the agreement of the float model whose only change is the integer weights (the
8-bit ceiling), their ratio, the spike-count correlation, the argmax agreement, the agreement of the float
model with the realised bias (and where it enters: current or voltage) and the integer program against the float
model with every cause in; "decays" and "reset" the float models with only the 12-bit decays or only Loihi's
reset (mode and immediate timing: snnTorch applies a reset one step late, which Loihi cannot). The CubaLIF nets run twice: bias into the current (default) and folded into the
voltage bias (``cuba_bias="fold"``, the old mapping).

``norse_dt1e4_agreement``: a Norse LIFBox/LIFCell net run by Norse itself at dt = 1e-4, exported with ``to_nir``'s
default dt and loaded with ``preset="norse", dt=1e-4``; our float executor against Norse's spikes.

    python benchmarks/fidelity.py [--quick]

RESULT lines: ``braille_subtract_agreement`` (mean over the input rates), ``braille_zero_vs_8bit_ceiling``
(program / weights-only agreement on braille_noDelay_bias_zero, mean over rates), ``cubalif_bias_loss_points``
(largest loss of output agreement, in points, that the bias handling alone causes on the CubaLIF nets with a
bias), ``norse_dt1e4_agreement``.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolchain.fidelity import fidelity  # noqa: E402
from toolchain.nir_io import load  # noqa: E402
from toolchain.sim.float import simulate_float  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "nir-paper"


def _heaviside(x: Any) -> Any:
    return (x > 0).to(x.dtype)


def snntorch_synaptic(seed: int = 0) -> Any:
    """12 -> 24 Synaptic -> 5 Synaptic, biased Linear layers, reset subtract; exported with snnTorch's exporter."""
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def u(n: int, lo: float, hi: float) -> Any:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    common = dict(init_hidden=True, reset_mechanism="subtract", spike_grad=_heaviside)
    net = torch.nn.Sequential(torch.nn.Linear(12, 24), snn.Synaptic(alpha=u(24, .3, .8), beta=u(24, .6, .9),
                                                                    threshold=u(24, .5, 1.0), **common),
                              torch.nn.Linear(24, 5), snn.Synaptic(alpha=u(5, .3, .8), beta=u(5, .6, .9),
                                                                   threshold=u(5, .5, 1.0), **common)).double()
    with torch.no_grad():
        net[0].weight.mul_(1.5)
        net[0].bias.add_(0.15)
        net[2].weight.mul_(2.0)
        net[2].bias.add_(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ng = export_to_nir(net, torch.zeros(1, 12, dtype=torch.float64), ignore_dims=[0])
        return load(ng, preset="snntorch")


def _norse_cells(dt: float, seed: int = 3, bias: bool = False) -> Tuple[Any, ...]:
    import norse.torch as norse
    import torch
    f64 = torch.float64
    p1 = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(200.0, dtype=f64), v_th=torch.tensor(0.25, dtype=f64))
    p2 = norse.LIFParameters(tau_mem_inv=torch.tensor(100.0, dtype=f64), tau_syn_inv=torch.tensor(400.0, dtype=f64),
                             v_th=torch.tensor(0.125, dtype=f64))
    torch.manual_seed(seed)
    lin1, lin2 = torch.nn.Linear(12, 16, bias=bias).double(), torch.nn.Linear(16, 5, bias=bias).double()
    with torch.no_grad():
        lin1.weight.mul_(2)
        lin2.weight.mul_(20)
        if bias:
            lin2.bias.mul_(0.5)
    return lin1, norse.LIFBoxCell(p1, dt=dt), lin2, norse.LIFCell(p2, dt=dt)


def norse_graph(dt: float = 1e-3) -> Any:
    """12 -> 16 LIFBox -> 5 LIF (current-based, biased Linear), Norse cells at ``dt``, exported with to_nir."""
    import norse.torch as norse
    import torch
    cells = _norse_cells(dt, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ng = norse.to_nir(norse.SequentialState(*cells), torch.zeros(1, 12, dtype=torch.float64))
        return load(ng, preset="norse", dt=dt)


def norse_dt1e4_agreement(batch: int, steps: int) -> float:
    """Our float executor against Norse's own run at dt = 1e-4 (file exported with to_nir's default dt)."""
    import norse.torch as norse
    import torch
    lin1, cell1, lin2, cell2 = _norse_cells(1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ng = norse.to_nir(norse.SequentialState(lin1, cell1, lin2, cell2), torch.zeros(1, 12, dtype=torch.float64))
        g = load(ng, preset="norse", dt=1e-4)
    x = (np.random.default_rng(5).random((batch, steps, 12)) < 0.3).astype(np.float64)
    s1 = s2 = None
    z = []
    with torch.no_grad():
        for t in range(steps):
            z1, s1 = cell1(lin1(torch.from_numpy(x[:, t])), s1)
            z2, s2 = cell2(lin2(z1), s2)
            z.append(z2.numpy())
    ref = np.stack(z, 1)
    ours = simulate_float(g, x).output
    print(f"norse dt=1e-4: Norse {int(ref.sum())} output spikes, ours {int(ours.sum())}")
    return float(np.mean(ref == ours))


def _row(name: str, rate: float, rep: Any, mode: str) -> Dict[str, Any]:
    o = rep.output
    lf, at = rep.layers[o], rep.attribution
    return {"graph": name, "rate": rate, "bias": mode, "prog": lf.agreement, "w8": at["weights"][o].agreement,
            "ratio": lf.agreement / at["weights"][o].agreement, "corr": lf.count_corr, "argmax": lf.argmax_agreement,
            "bias_attr": at["bias"][o].agreement, "int_vs_all": at["integer_vs_all"][o].agreement,
            "decays": at["decays"][o].agreement, "reset": at["reset"][o].agreement,
            "sat": sum(rep.saturation.values())}


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and steps")
    args = ap.parse_args(argv)
    batch, steps = (8, 200) if args.quick else (40, 500)
    t0 = time.time()
    rows: List[Dict[str, Any]] = []
    cases: List[Tuple[str, Any, Dict[str, Any], bool]] = []
    for f, reset in (("braille_noDelay_bias_zero.nir", "zero"), ("braille_noDelay_noBias_subtract.nir", "subtract"),
                     ("braille_noDelay_bias_zero_subgraph.nir", "zero")):
        if (DATA / f).is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cases.append((f.replace(".nir", ""), load(DATA / f, dt=1e-4, reset=reset), {}, "bias" in f))
        else:
            print(f"skipped {f}: {DATA} not present")
    try:
        cases.append(("snntorch_synaptic", snntorch_synaptic(), {}, True))
    except ImportError as exc:
        print(f"skipped snnTorch: {exc}")
    try:
        cases.append(("norse_lifcell", norse_graph(1e-3), {}, True))
    except ImportError as exc:
        print(f"skipped Norse: {exc}")
    rp = ROOT / "tests" / "data" / "frameworks" / "rockpool_lif.nir"
    if rp.is_file():  # written once by Rockpool 3.1 (tests/data/frameworks/make_rockpool.py): nir<=1.0.4 there
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cases.append(("rockpool_lif (shipped file)", load(rp, preset="rockpool"), {}, False))
    for name, g, opts, biased in cases:
        for rate in (0.1, 0.3):
            for mode in (("current", "fold") if biased else ("current",)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rep = fidelity(g, random=batch, steps=steps, rate=rate, seed=1, cuba_bias=mode, **opts)
                rows.append(_row(name, rate, rep, mode))
    hdr = (f"{'graph':<40}{'rate':>5}{'bias':>8}{'program':>9}{'w8 only':>9}{'ratio':>7}{'count r':>8}"
           f"{'argmax':>7}{'bias only':>10}{'decays':>8}{'reset':>7}{'int/all':>8}{'v sat':>7}")
    print(hdr)
    for r in rows:
        print(f"{r['graph']:<40}{r['rate']:>5}{r['bias']:>8}{r['prog']:>9.4f}{r['w8']:>9.4f}{r['ratio']:>7.3f}"
              f"{r['corr'] if r['corr'] is not None else float('nan'):>8.3f}{r['argmax']:>7.3f}"
              f"{r['bias_attr']:>10.4f}{r['decays']:>8.4f}{r['reset']:>7.4f}{r['int_vs_all']:>8.4f}{r['sat']:>7}")
    cur = [r for r in rows if r["bias"] == "current"]
    sub = [r["prog"] for r in cur if r["graph"] == "braille_noDelay_noBias_subtract"]
    zero = [r["ratio"] for r in cur if r["graph"] == "braille_noDelay_bias_zero"]
    biased = {name for name, _, _, b in cases if b}
    loss = [100 * (1 - r["bias_attr"]) for r in cur if r["graph"] in biased]
    loss_fold = [100 * (1 - r["bias_attr"]) for r in rows if r["bias"] == "fold"]
    try:
        nd = norse_dt1e4_agreement(batch, steps)
    except ImportError:
        nd = float("nan")
    rp_ref = ROOT / "tests" / "data" / "frameworks" / "rockpool_lif.npz"
    if rp.is_file() and rp_ref.is_file():
        ref = np.load(rp_ref)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = load(rp, preset="rockpool")
        ours = simulate_float(g, ref["x"].astype(np.float64)).output
        print(f"rockpool 3.1 own run vs our float executor (preset rockpool): {np.mean(ours == ref['spikes_3']):.4f} "
              f"output agreement, {int(ref['spikes_3'].sum())} spikes")
    if loss_fold:
        print(f"bias folded into the voltage instead (the old mapping): up to {max(loss_fold):.2f} points lost")
    print(f"total {time.time() - t0:.0f} s")
    if sub:
        print(f"RESULT braille_subtract_agreement {np.mean(sub):.4f}")
    if zero:
        print(f"RESULT braille_zero_vs_8bit_ceiling {np.mean(zero):.4f}")
    if loss:
        print(f"RESULT cubalif_bias_loss_points {max(loss):.2f}")
    print(f"RESULT norse_dt1e4_agreement {nd:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
