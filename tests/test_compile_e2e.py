"""End to end: NIR file -> compile -> reference simulator (and Lava), against the float executor and the NIR
paper's published traces; the ``snnc compile`` command."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli.main import main
from toolchain.compile import compile_file, compile_graph
from toolchain.passes.quantise import BIAS_GROUP, SPLIT_SUFFIX
from toolchain.program import Program
from toolchain.sim.float import simulate_float
from toolchain.sim.reference import simulate
from toolchain.testing import random_lif_graph, random_spikes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nir-paper"


def _data(name: str) -> Path:
    f = DATA / name
    if not f.exists():
        pytest.skip(f"NIR paper data not found: {f}")
    return f


def _lava():
    try:
        from toolchain.backends.lava import run_lava
    except ImportError as exc:  # the Lava backend is another engineer's module
        pytest.skip(f"toolchain.backends.lava not available: {exc}")
    return run_lava


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


# ------------------------------------------------------------------------------------ NIR paper, task 1
def _lif_task():
    prog = _quiet(compile_file, _data("lif_norse.nir"), "loihi2", dt=1e-4)
    exact = np.loadtxt(_data("lif_exact.csv"), delimiter=",")
    loihi = np.loadtxt(_data("lif_lava_loihi_fixed.csv"), delimiter=",")
    x = exact[:, 0].astype(np.int64)[None, :, None]
    return prog, exact, loihi, x


def test_lif_task_spikes_where_loihi2_hardware_did():
    """lif_norse.nir at dt = 1e-4 driven by the input column of lif_exact.csv spikes at steps 461, 511, 711, 761,
    as Loihi 2 did; the exact solution spikes one step earlier (460, ...): the one-step synaptic delay of the
    compiled network (``output_latency_steps`` = 1)."""
    prog, exact, loihi, x = _lif_task()
    out = simulate(prog, x).output[0, :, 0]
    assert np.flatnonzero(out).tolist() == [461, 511, 711, 761]
    np.testing.assert_array_equal(out, loihi[:, 2])
    lat = prog.metadata["output_latency_steps"]
    assert lat == 1
    assert (np.flatnonzero(exact[:, 2]) + lat).tolist() == [461, 511, 711, 761]
    f = simulate_float(prog_graph := _quiet(_load, "lif_norse.nir"), x.astype(float)).output[0, :, 0]
    assert prog_graph.dt == 1e-4
    np.testing.assert_array_equal(np.flatnonzero(f), np.flatnonzero(exact[:, 2]))


def _load(name, **kw):
    from toolchain.nir_io import load
    return load(_data(name), dt=kw.pop("dt", 1e-4), **kw)


def test_lif_task_on_lava_matches_the_reference_and_loihi2():
    run_lava = _lava()
    prog, _, loihi, x = _lif_task()
    ref = simulate(prog, x, record=True)
    lava = run_lava(prog, x, record=True)
    assert ref.first_mismatch(lava) is None
    np.testing.assert_array_equal(lava.output[0, :, 0], loihi[:, 2])


# ------------------------------------------------------------------------------- compiled vs float
def test_small_lif_network_matches_the_float_executor_shifted_by_its_latency():
    """Reference-simulated spikes equal the float executor's, delayed by the latency of each layer. The weights
    carry 8-bit mantissas and the leak a 12-bit decay, so a few spikes may move when the float membrane ends
    within the quantisation error of the threshold; we require 97% agreement per layer."""
    g = random_lif_graph([20, 30, 10], seed=3, dt=1e-3, tau=0.01, gain=2.0)
    prog = _quiet(compile_graph, g, "loihi2")
    T = 200
    x = random_spikes(4, T, 20, rate=0.3, seed=1)
    f = simulate_float(g, x.astype(np.float64), record=True)
    r = simulate(prog, x, record=True)
    for layer in ("lif0", "lif1"):
        lat = prog.metadata["latency_steps"][layer]
        fs = f.values[layer][:, : T - lat]
        rs = r.spikes[layer][:, lat:]
        assert fs.sum() > 500  # the layer is active
        agree = np.mean(fs == rs)
        assert agree >= 0.97, (layer, agree)
        assert abs(int(rs.sum()) - int(fs.sum())) <= 0.05 * fs.sum()
        assert agree > np.mean(fs == r.spikes[layer][:, : T - lat]) + 0.02  # without the shift they disagree


# ----------------------------------------------------------------------------- NIR paper, tasks 2, 3
BRAILLE = [("braille_noDelay_bias_zero.nir", "zero"), ("braille_noDelay_noBias_subtract.nir", "subtract"),
           ("braille_noDelay_bias_zero_subgraph.nir", "zero")]


@pytest.mark.parametrize("name,reset", BRAILLE)
def test_braille_graphs_compile_with_reports(name, reset):
    prog = _quiet(compile_file, _data(name), "loihi2", dt=1e-4, reset=reset)
    rep = prog.report
    assert rep["cores_used"] == rep["lower_bound"] == 1 and rep["neurons_placed"] == prog.neuron_count
    # the nested-subgraph file names the hidden layer differently; the bias_zero files' CubaLIF biases enter the
    # current through synapses from the always-on group BIAS_GROUP
    hidden, out = [g for g in prog.groups if g != BIAS_GROUP]
    assert (BIAS_GROUP in prog.groups) == ("bias" in name)
    assert hidden.startswith("lif1.") and out == prog.output == "lif2"
    assert prog.metadata["latency_steps"] == {hidden: 1, "lif2": 2}
    # the default weight_split="auto" gives the recurrent group its remainder companion (".lo"): same path, delay
    rec = [s for s in prog.synapses if s.recurrent]
    assert [s.name.endswith(SPLIT_SUFFIX) for s in rec] == [False, True]
    assert all(s.src == s.dst == hidden and s.delay == 0 for s in rec)
    assert all(g.reset_mode == reset for g in prog.groups.values() if g.name != BIAS_GROUP)
    for s in prog.quant_report["synapses"].values():
        assert s["weight_rel_error_max"] < 0.01


def _bitexact(prog, x):
    run_lava = _lava()
    ref = simulate(prog, x, record=True)
    lava = run_lava(prog, x, record=True)
    mm = ref.first_mismatch(lava)
    assert mm is None, str(mm)
    assert set(lava.spikes) == set(ref.spikes) == set(prog.groups) and set(lava.v) == set(prog.groups)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0  # the comparison covers spikes, not silence
    return len(ref.spikes)


@pytest.mark.parametrize("name,reset", BRAILLE)
def test_braille_bit_exact_reference_vs_lava(name, reset):
    """Every spike, u and v of every layer at every step equal on the reference simulator and Lava."""
    prog = _quiet(compile_file, _data(name), "loihi2", dt=1e-4, reset=reset)
    assert _bitexact(prog, random_spikes(1, 60, 12, rate=0.3, seed=2)) == len(prog.groups)


@pytest.mark.slow
@pytest.mark.parametrize("name,reset", BRAILLE)
def test_braille_bit_exact_reference_vs_lava_long(name, reset):
    prog = _quiet(compile_file, _data(name), "loihi2", dt=1e-4, reset=reset)
    assert _bitexact(prog, random_spikes(2, 300, 12, rate=0.25, seed=5)) == len(prog.groups)


def test_cnn_sinabs_compiles_with_a_resource_report():
    prog = _quiet(compile_file, _data("cnn_sinabs.nir"), "loihi2", preset="sinabs")
    rep = prog.report
    # conv layers: the provable bound is loose (it allows chunks as short as one output position), the
    # unsplit-layer estimate is close
    assert 2 <= rep["lower_bound"] <= rep["cores_used"] <= 1.15 * rep["unsplit_estimate"]
    assert rep["synapses_placed"] == prog.synapse_count
    assert [g for g in prog.groups] == ["1", "3", "6", "10", "12"]
    kinds = {s.name: s.weight.kind for s in prog.synapses}
    assert kinds["0"] == "csr" and kinds["4+5"] == "csr"  # convolutions (and pool+conv) as sparse index maps
    assert prog.metadata["output_latency_steps"] == 5
    assert prog.groups["1"].shape == (16, 16, 16)


def test_cnn_sinabs_bit_exact_reference_vs_lava():
    prog = _quiet(compile_file, _data("cnn_sinabs.nir"), "loihi2", preset="sinabs")
    assert _bitexact(prog, random_spikes(1, 8, 2 * 34 * 34, rate=0.2, seed=0).reshape(1, 8, 2, 34, 34)) == len(prog.groups)


# --------------------------------------------------------------------------------------------- CLI
def test_snnc_compile_writes_the_build_and_prints_the_report(tmp_path, capsys):
    out = tmp_path / "build"
    rc = main(["compile", str(_data("lif_norse.nir")), "--target", "loihi2", "--dt", "1e-4", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "cores used 1 (lower bound 1)" in text and "headroom" in text
    prog = Program.load(out)
    assert prog.target == "loihi2" and prog.dt == 1e-4 and prog.report["cores_used"] == 1


def test_snnc_compile_for_a_system_target_reports_the_chip_map(tmp_path, capsys):
    out = tmp_path / "build"
    rc = main(["compile", str(_data("lif_norse.nir")), "--target", "kapoho_point", "--dt", "1e-4", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "chips used 1 (1 cores, 128 per chip)" in text and "inter-chip spikes/step" in text
    mc = Program.load(out).report["multichip"]
    assert mc["chip_of_core"] == [0] and mc["interchip_spikes_per_step"] == 0.0
    assert mc["interchip_link_cost"] == 700.0


@pytest.mark.parametrize("args,words", [
    (["compile", "MISSING.nir", "-o", "{out}"], "MISSING.nir"),
    (["compile", "{lif}", "--dt", "-1", "-o", "{out}"], "dt"),
    (["compile", "{braille}", "--dt", "1e-4", "--reset", "subtract", "-t", "loihi1", "-o", "{out}"],
     "reset_mode"),
    (["compile", "{lif}", "--dt", "1e-4", "-t", "loihi7", "-o", "{out}"], "loihi7"),
])
def test_snnc_compile_bad_input_one_line_exit_1_nothing_written(tmp_path, capsys, args, words):
    out = tmp_path / "build"
    fill = {"out": str(out), "lif": str(_data("lif_norse.nir")),
            "braille": str(_data("braille_noDelay_noBias_subtract.nir"))}
    rc = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert [ln for ln in err if ln.startswith("error:")] and words in [ln for ln in err if ln.startswith("error:")][0]
    assert len([ln for ln in err if not ln.startswith("warning:")]) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
