"""Conversion fidelity (issue 12): the exact CubaLIF bias, v headroom, and ``snnc fidelity`` / ``toolchain.fidelity``."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli.main import main
from toolchain.compile import compile_graph
from toolchain.fidelity import EFFECTS, compare_spikes, effect_graph, fidelity, format_fidelity, normalised_graph
from toolchain.ir import LIF, Affine, CubaLIF, Graph, Input, Output
from toolchain.nir_io import export
from toolchain.passes.quantise import BIAS_GROUP, SPLIT_SUFFIX
from toolchain.sim.float import simulate_float
from toolchain.sim.reference import simulate
from toolchain.testing import rng

DT = 1e-3
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nir-paper"


def _cuba_net(bias_scale: float = 1.0, seed: int = 0) -> Graph:
    """4 inputs -> Affine with a bias -> 6 CubaLIF (slow synapse) -> Output."""
    r = rng(seed)
    w = r.normal(0.0, 0.6, (6, 4))
    b = bias_scale * np.array([0.9, -0.4, 0.5, 0.0, 1.3, -1.0])
    return Graph([Input("in", shape=(4,)), Affine("fc", weight=w, bias=b),
                  CubaLIF("c", shape=(6,), tau_syn=7e-3, tau_mem=5e-3, r=1.0, w_in=1.0, v_threshold=0.25),
                  Output("out", shape=(6,))], [("in", "fc"), ("fc", "c"), ("c", "out")], dt=DT)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _v_error(prog, g, x) -> float:
    """Largest |v_int / S - v_float| over all steps, in thresholds (no spike may have happened before)."""
    fr = simulate_float(g, x.astype(float), record=True)
    L = prog.metadata["latency_steps"]["c"]
    xi = np.concatenate([x, np.zeros((x.shape[0], L, x.shape[2]), x.dtype)], axis=1)
    r = simulate(prog, xi, record=True)
    S = np.asarray(prog.metadata["v_scale"]["c"])
    vi = r.v["c"][:, L:].astype(float) / S
    return float(np.max(np.abs(vi - fr.states["c"]["v"]))) / 0.25


def test_cuba_bias_reaches_the_current_exactly():
    g = _cuba_net(bias_scale=0.05)  # small: no neuron reaches the threshold, so v can be compared at every step
    x = np.zeros((1, 60, 4), np.int32)
    prog = _quiet(compile_graph, g, "loihi2", partition=False)
    assert BIAS_GROUP in prog.groups and prog.quant_report["groups"]["c"]["cuba_bias"] == "current"
    on = prog.groups[BIAS_GROUP]
    syn = [s for s in prog.synapses if s.src == BIAS_GROUP]
    assert syn and all(s.dst == "c" and s.delay == prog.metadata["latency_steps"]["c"] - 1 for s in syn)
    # only a remainder of each bias (|f| <= 1/2 + BIAS_SHIFT_MAX a_in) is left for the voltage bias (its steady
    # state; u_init carries its transient)
    from toolchain.passes.quantise import BIAS_SHIFT_MAX
    c = prog.groups["c"]
    rest = np.abs(c.bias_mant.astype(np.int64) << c.bias_exp)
    assert np.all(rest <= (0.5 + BIAS_SHIFT_MAX) * 64 * 4096 / (c.du.astype(np.int64) + 1) + 1) and rest.max() > 0
    r = simulate(prog, np.zeros((1, 10, 4), np.int32), record=True)
    assert r.spikes[BIAS_GROUP].all() and on.size == 1  # the always-on neuron spikes at every step
    err_current = _v_error(prog, g, x)
    folded = _quiet(compile_graph, g, "loihi2", partition=False, cuba_bias="fold")
    assert BIAS_GROUP not in folded.groups and folded.quant_report["groups"]["c"]["cuba_bias"] == "fold"
    err_fold = _v_error(folded, g, x)
    assert err_current < 3e-3, err_current       # the integer v follows the float v (rounding only)
    assert err_fold > 20 * err_current and err_fold > 0.02, (err_fold, err_current)  # the fold does not


def test_cuba_bias_remainder_rises_with_the_current_from_u_init(tmp_path):
    """The part of a CubaLIF bias the integer synapses cannot carry (|f| <= 1/2 a_in per step) is a constant voltage
    bias r plus a current that starts at u_init and decays into the first input step at -r: together the float
    model's rise r·(1 - k^(t+1)), so v follows the float v to rounding, instead of carrying a one-time offset."""
    from toolchain.backends.lava import run_lava
    from toolchain.program import Program
    from toolchain.sim import torch_backend as TB
    g = _cuba_net(bias_scale=0.05)
    x = np.zeros((1, 60, 4), np.int32)
    prog = _quiet(compile_graph, g, "loihi2", partition=False, weight_split=False)
    old = _quiet(compile_graph, g, "loihi2", partition=False, weight_split=False, align_bias=False)
    c, q = prog.groups["c"], prog.quant_report["groups"]["c"]
    B = c.bias_mant.astype(np.int64) << c.bias_exp
    assert q["bias_current_remainder"] == B.tolist() and np.count_nonzero(B) == 5  # v_leak 0: all of B is r
    assert np.array_equal(np.sign(c.u_init), -np.sign(B)) and not np.any(old.groups["c"].u_init)
    # the first input step inherits exactly decay(-r): u_init decayed latency + 1 times
    from toolchain import fixedpoint as fx
    u = c.u_init.astype(np.int64)
    for _ in range(prog.metadata["latency_steps"]["c"] + 1):
        u = fx.decay_rtz(u, c.du.astype(np.int64) + fx.DS_OFFSET).astype(np.int64)
    assert np.array_equal(u, fx.decay_rtz(-B, c.du.astype(np.int64) + fx.DS_OFFSET))
    err, err_old = _v_error(prog, g, x), _v_error(old, g, x)
    assert err < 2e-4 and err_old > 5 * err, (err, err_old)
    # the float model with the realised bias (a' + r·dt/tau_syn/64 in the current) is what the integers run
    eg = effect_graph(normalised_graph(g), prog, ["bias"])
    assert _v_error(prog, eg, x) < 2e-4
    # bit-exact on Lava and on the torch engine, with input and spikes; saved and loaded (format version 5)
    xs = (rng(1).random((2, 50, 4)) < 0.4).astype(np.int32)
    big = _quiet(compile_graph, _cuba_net(seed=3), "loihi2", partition=False, weight_split=False)
    assert np.any(big.groups["c"].u_init)
    ref = simulate(big, xs, record=True)
    assert ref.spikes["c"].sum() > 20
    assert ref.first_mismatch(run_lava(big, xs, record=True)) is None  # the batched network (one LIF pool)
    assert simulate(big, xs[:1], record=True).first_mismatch(run_lava(big, xs[:1], record=True)) is None
    tb = TB.simulate(big, xs, record=True)
    assert np.array_equal(np.asarray(tb.spikes["c"]), ref.spikes["c"])
    assert np.array_equal(np.asarray(tb.v["c"]), ref.v["c"]) and np.array_equal(np.asarray(tb.u["c"]), ref.u["c"])
    big.save(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "program.json").read_text())["version"] == 5
    back = Program.load(tmp_path / "b")
    assert np.array_equal(back.groups["c"].u_init, big.groups["c"].u_init)
    import dataclasses
    from toolchain.backends.netx import _check_group
    with pytest.raises(Exception, match="cannot set an initial current"):
        _check_group(dataclasses.replace(big.groups["c"], v_init=0))


def test_cuba_bias_with_input_matches_the_float_model_spike_for_spike():
    g = _cuba_net(bias_scale=1.0, seed=3)
    rep = _quiet(fidelity, g, random=6, steps=200, rate=0.3, seed=1)
    assert rep.layers["c"].spikes_ref > 100
    # bias handling costs nothing: the float model with the realised bias is the float model
    assert rep.attribution["bias"]["c"].agreement >= 0.999
    assert rep.attribution["integer_vs_all"]["c"].agreement >= 0.995
    fold = _quiet(fidelity, g, random=6, steps=200, rate=0.3, seed=1, cuba_bias="fold")
    assert fold.attribution["bias"]["c"].agreement < rep.attribution["bias"]["c"].agreement - 0.005


def test_fold_warns_that_the_shift_persists():
    with pytest.warns(UserWarning, match="phase shift is never undone|can differ for the whole run"):
        compile_graph(_cuba_net(), "loihi2", partition=False, cuba_bias="fold")
    with pytest.raises(Exception, match="cuba_bias"):
        _quiet(compile_graph, _cuba_net(), "loihi2", partition=False, cuba_bias="leak")


def test_negative_v_headroom_is_a_warning_naming_the_group():
    # a leak target 5000 thresholds below zero: v would settle far beyond the 24-bit range even at vth = 64
    g = Graph([Input("in", shape=(2,)), Affine("fc", weight=np.ones((3, 2)), bias=np.zeros(3)),
               LIF("deep", shape=(3,), tau=1.0, v_leak=-5000.0, v_threshold=1.0), Output("out", shape=(3,))],
              [("in", "fc"), ("fc", "deep"), ("deep", "out")], dt=DT)
    with pytest.warns(UserWarning, match=r"LIF 'deep': negative v headroom \(-"):
        prog = compile_graph(g, "loihi2", partition=False)
    assert prog.quant_report["groups"]["deep"]["headroom_v_bits"] < 0
    # and where the headroom allows, the threshold comes down instead of v saturating
    g2 = Graph([Input("in", shape=(2,)), Affine("fc", weight=np.ones((3, 2)), bias=np.zeros(3)),
                LIF("ok", shape=(3,), tau=0.1, v_leak=-50.0, v_threshold=1.0), Output("out", shape=(3,))],
               [("in", "fc"), ("fc", "ok"), ("ok", "out")], dt=DT)
    p2 = _quiet(compile_graph, g2, "loihi2", partition=False)
    q = p2.quant_report["groups"]["ok"]
    assert q["vth_limited_by"] == "v headroom" and q["headroom_v_bits"] >= 0
    r = simulate(p2, np.zeros((1, 400, 2), np.int32), record=True)
    assert np.abs(r.v["ok"].astype(np.int64)).max() < 2 ** 23 - 1  # never saturates


def test_weight_split_carries_the_rounding_remainder_bit_exactly_on_lava():
    from toolchain.backends.lava import run_lava
    from toolchain.fidelity import _realised
    g = _cuba_net(seed=3)
    plain = _quiet(compile_graph, g, "loihi2", partition=False, weight_split=False)
    split = _quiet(compile_graph, g, "loihi2", partition=False, weight_split=True)
    lo = [s for s in split.synapses if s.name == "fc" + SPLIT_SUFFIX]
    assert len(lo) == 1 and lo[0].weight_exp >= 0 and lo[0].src == "in" and lo[0].dst == "c"
    assert not any(s.name.endswith(SPLIT_SUFFIX) for s in plain.synapses)
    assert split.quant_report["synapses"]["fc" + SPLIT_SUFFIX]["weight_rel_error_max"] < \
        split.quant_report["synapses"]["fc"]["weight_rel_error_max"] / 4
    # the pair realises the ideal a_in (vth·c/θ·w) more closely than the 8-bit group alone
    q = split.quant_report["groups"]["c"]["vth"]
    assert q == plain.quant_report["groups"]["c"]["vth"]
    ideal = q * (DT / 5e-3) * (DT / 7e-3) / 0.25 * g["fc"].weight.to_dense()
    err_plain = np.abs(_realised(plain, "fc")[0] - ideal).max()
    err_split = np.abs(_realised(split, "fc")[0] - ideal).max()
    assert err_split <= 1.0 + 1e-9 and err_split < err_plain / 4, (err_split, err_plain)  # integer grid of a_in
    x = (rng(0).random((1, 40, 4)) < 0.4).astype(np.int32)
    ref = simulate(split, x, record=True)
    assert ref.spikes["c"].sum() > 20
    assert ref.first_mismatch(run_lava(split, x, record=True)) is None


def test_weight_split_follows_delay_splits_and_sparse_storage():
    from toolchain.fidelity import _realised
    from toolchain.ir import Delay, Linear
    from toolchain.ir.storage import Csr
    r = rng(4)
    w = r.normal(0, 0.8, (6, 5))
    w[r.random((6, 5)) < 0.5] = 0
    g = Graph([Input("in", shape=(5,)), Linear("fc", weight=Csr.from_dense(w)),
               Delay("d", delay=np.array([2e-3, 1e-3, 3e-3, 0.0, 2e-3, 1e-3]), shape=(6,)),
               LIF("l", shape=(6,), tau=5e-3, r=1.0, v_threshold=0.2), Output("out", shape=(6,))],
              [("in", "fc"), ("fc", "d"), ("d", "l"), ("l", "out")], dt=DT)
    plain = _quiet(compile_graph, g, "loihi2", partition=False, weight_split=False)
    split = _quiet(compile_graph, g, "loihi2", partition=False, weight_split=True)
    tot, names = _realised(split, "fc")
    assert sorted(n for n in names if SPLIT_SUFFIX in n) == [f"fc{SPLIT_SUFFIX}@d{k}" for k in range(4)]
    assert all(s.weight.kind == "csr" for s in split.synapses)
    for s in split.synapses:  # a companion keeps its group's delay and synapses
        if SPLIT_SUFFIX in s.name:
            hi = next(h for h in split.synapses if h.name == s.name.replace(SPLIT_SUFFIX, ""))
            assert s.delay == hi.delay and s.weight.nnz == hi.weight.nnz
    vth = split.quant_report["groups"]["l"]["vth"]
    ideal = vth * (DT / 5e-3) / 0.2 * w
    assert np.abs(tot - ideal).max() < np.abs(_realised(plain, "fc")[0] - ideal).max() / 4


def _lif_net() -> Graph:
    from toolchain.ir import Linear
    r = rng(0)
    return Graph([Input("in", shape=(32,)), Linear("fc", weight=r.normal(0, 0.3, (16, 32))),
                  LIF("l", shape=(16,), tau=5e-3, r=1.0, v_threshold=0.5), Output("out", shape=(16,))],
                 [("in", "fc"), ("fc", "l"), ("l", "out")], dt=DT)


def test_weight_split_auto_is_the_default_where_it_costs_no_core():
    import dataclasses
    from toolchain.targets import load_target
    g = _lif_net()
    spec = load_target("loihi2")
    auto = _quiet(compile_graph, g, spec)
    split = _quiet(compile_graph, g, spec, weight_split=True, v_headroom=16)
    plain = _quiet(compile_graph, g, spec, weight_split=False)
    pr = auto.metadata["precision"]
    assert pr["split"] == ["fc"] and pr["v_headroom"] == 16.0 and pr["cores_plain"] == pr["cores_split"] == 1
    assert pr["weight_error_split"] <= pr["weight_error_plain"] / 4
    assert pr["note"].startswith("precision: weight_split on 1 synapse group(s) (fc)")
    assert [(s.name, s.weight_exp) for s in auto.synapses] == [(s.name, s.weight_exp) for s in split.synapses]
    assert all(np.array_equal(a.weight.to_dense(), b.weight.to_dense())
               for a, b in zip(auto.synapses, split.synapses))
    assert not any(s.name.endswith(SPLIT_SUFFIX) for s in plain.synapses) and "precision" in plain.metadata
    # a target whose synapse memory holds the 8-bit group but not the pair on one core: auto keeps the plain one
    small = dataclasses.replace(spec, synapse_memory_bits=int(plain.report["synapse_bits"] * 1.3))
    tight = _quiet(compile_graph, g, small)
    pr = tight.metadata["precision"]
    assert pr["split"] == [] and (pr["cores_plain"], pr["cores_split"]) == (1, 2)
    assert pr["note"] == "precision: no weight split (the split needs 2 cores against 1)"
    assert tight.report["cores_used"] == 1 and not any(SPLIT_SUFFIX in s.name for s in tight.synapses)
    # partition=False still decides on the cores (the candidates are placed to count them), and returns unplaced
    unplaced = _quiet(compile_graph, g, small, partition=False)
    assert unplaced.placement is None and unplaced.metadata["precision"]["split"] == []
    for bad in ("yes", 2, None):
        with pytest.raises(Exception, match="weight_split must be 'auto', True or False"):
            _quiet(compile_graph, g, spec, weight_split=bad)


def test_weight_split_auto_keeps_the_warnings_of_the_program_it_keeps():
    g = _lif_net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = compile_graph(g, "loihi2", partition=False)
    got = sorted({str(w.message) for w in caught})
    assert got == sorted(set(prog.quant_report["warnings"])), (got, prog.quant_report["warnings"])
    # the split build's own negative-headroom warnings (its relaxed v headroom) become part of the note instead
    f = DATA / "braille_noDelay_bias_zero.nir"
    if not f.is_file():
        return
    from toolchain.nir_io import load
    g = _quiet(load, f, dt=1e-4, reset="zero")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = compile_graph(g, "loihi2", partition=False)
    pr = prog.metadata["precision"]
    assert pr["v_may_saturate"] == ["lif1.lif", "lif2"] and "v may saturate below -16 thresholds" in pr["note"]
    assert sum("negative v headroom" in w for w in prog.quant_report["warnings"]) == 2
    assert not any("negative v headroom" in str(w.message) for w in caught)


def test_v_headroom_option_trades_the_worst_case_for_resolution():
    f = DATA / "braille_noDelay_noBias_subtract.nir"
    if not f.is_file():
        pytest.skip("../shared/data/nir-paper not present")
    from toolchain.nir_io import load
    g = _quiet(load, f, dt=1e-4, reset="subtract")
    worst = _quiet(compile_graph, g, "loihi2", reset="subtract", partition=False, weight_split=False)
    assert worst.quant_report["groups"]["lif1.lif"]["vth_limited_by"] == "v headroom"
    with pytest.warns(UserWarning, match=r"'lif1.lif': negative v headroom"):
        opt = compile_graph(g, "loihi2", reset="subtract", partition=False, v_headroom=16, weight_split=False)
    assert opt.quant_report["groups"]["lif1.lif"]["vth"] > 4 * worst.quant_report["groups"]["lif1.lif"]["vth"]
    for bad in (0, -1.0, "x", float("inf")):
        with pytest.raises(Exception, match="v_headroom"):
            _quiet(compile_graph, g, "loihi2", partition=False, v_headroom=bad)
    # with both options the subtract graph keeps its float behaviour to >= 99% (8-bit weights alone: ~98%)
    rep = _quiet(fidelity, g, random=8, steps=200, rate=0.3, seed=1, attribution=False, weight_split=True,
                 v_headroom=16)
    assert rep.agreement >= 0.99 and sum(rep.saturation.values()) == 0, (rep.agreement, rep.saturation)
    # ... and that is what the default (weight_split="auto") compiles: the same figures without any option
    auto = _quiet(fidelity, g, random=8, steps=200, rate=0.3, seed=1, attribution=False)
    assert auto.agreement == rep.agreement and auto.precision["split"] == ["fc1", "fc2", "lif1.w_rec"]
    assert auto.precision["v_headroom"] == 16.0 and auto.precision["cores_split"] == auto.precision["cores_plain"]


def test_compare_spikes_figures():
    a = np.zeros((2, 5, 3))
    b = a.copy()
    a[0, 1, 0] = a[1, 3, 2] = a[1, 4, 2] = 1
    b[0, 1, 0] = b[1, 4, 2] = 1
    b[1, 2, 1] = 1
    f = compare_spikes(a, b)
    assert f.agreement == pytest.approx(1 - 2 / 30) and f.first_divergence == 2
    assert f.spikes_ref == 3 and f.spikes_other == 3 and f.argmax_agreement == 0.5
    same = compare_spikes(a, a)
    assert same.agreement == 1.0 and same.first_divergence is None and same.count_corr == pytest.approx(1.0)


def test_effect_graph_switches_one_cause_at_a_time():
    g = _cuba_net(seed=5)
    prog = _quiet(compile_graph, g, "loihi2", partition=False)
    gn = normalised_graph(g)
    x = (rng(2).random((3, 80, 4)) < 0.3).astype(float)
    base = simulate_float(gn, x).output
    w = effect_graph(gn, prog, ["weights"])
    assert not np.array_equal(w["fc"].weight.to_dense(), gn["fc"].weight.to_dense())
    assert np.allclose(w["fc"].weight.to_dense(), gn["fc"].weight.to_dense(), rtol=0.02, atol=0.01)
    d = effect_graph(gn, prog, ["decays"])
    assert d["c"].tau_syn[0] != gn["c"].tau_syn[0] and d["fc"] == gn["fc"]
    # decays keep the input gain: dt/tau_syn * w_in and dt/tau_mem * r are unchanged
    np.testing.assert_allclose(DT / d["c"].tau_syn * d["c"].w_in, DT / gn["c"].tau_syn * gn["c"].w_in)
    np.testing.assert_allclose(DT / d["c"].tau_mem * d["c"].r, DT / gn["c"].tau_mem * gn["c"].r)
    assert np.array_equal(simulate_float(effect_graph(gn, prog, []), x).output, base)
    with pytest.raises(Exception, match="unknown effect"):
        effect_graph(gn, prog, ["colour"])
    assert set(EFFECTS) == {"weights", "decays", "bias", "reset"}


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/nir-paper not present")
def test_braille_bias_zero_loses_no_more_than_its_weights():
    rep = _quiet(fidelity, str(DATA / "braille_noDelay_bias_zero.nir"), dt=1e-4, reset="zero", random=12,
                 steps=200, rate=0.3, seed=0, weight_split=False)
    assert all(v == 0 for v in rep.saturation.values()), rep.saturation  # the hidden layer used to saturate
    out = rep.layers["lif2"].agreement
    ceiling = rep.attribution["weights"]["lif2"].agreement
    assert out >= ceiling - 0.01, (out, ceiling)
    assert rep.attribution["integer_vs_all"]["lif2"].agreement >= 0.98
    assert rep.attribution["bias"]["lif2"].agreement >= 0.995


def test_cli_compile_and_fidelity_take_the_precision_options(tmp_path, capsys):
    from toolchain.program import Program
    f = tmp_path / "net.nir"
    export(_cuba_net(seed=2), f)
    assert main(["compile", str(f), "--dt", "1e-3", "--weight-split", "--v-headroom", "8", "--no-partition",
                 "-o", str(tmp_path / "b")]) == 0
    prog = Program.load(tmp_path / "b")
    assert any(s.name == "fc" + SPLIT_SUFFIX for s in prog.synapses)
    assert prog.metadata["compile_options"]["v_headroom"] == 8.0
    assert main(["fidelity", str(f), "--dt", "1e-3", "--random", "2", "--steps", "30", "--weight-split",
                 "--no-attribution"]) == 0
    assert "agreement" in capsys.readouterr().out
    assert main(["compile", str(f), "--dt", "1e-3", "-o", str(tmp_path / "auto")]) == 0
    out = capsys.readouterr().out
    assert "precision: weight_split on 1 synapse group(s) (fc)" in out
    assert any(s.name == "fc" + SPLIT_SUFFIX for s in Program.load(tmp_path / "auto").synapses)
    assert main(["compile", str(f), "--dt", "1e-3", "--no-weight-split", "-o", str(tmp_path / "off")]) == 0
    assert "precision:" not in capsys.readouterr().out
    assert not any(SPLIT_SUFFIX in s.name for s in Program.load(tmp_path / "off").synapses)
    assert main(["fidelity", str(f), "--dt", "1e-3", "--random", "2", "--steps", "30", "--no-attribution"]) == 0
    assert "precision: weight_split on" in capsys.readouterr().out
    assert main(["compile", str(f), "--dt", "1e-3", "--v-headroom", "0", "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "v_headroom" in err and "Traceback" not in err and not (tmp_path / "c").exists()


def test_cli_fidelity_on_a_file_and_a_build(tmp_path, capsys):
    g = _cuba_net(seed=1)
    f = tmp_path / "net.nir"
    export(g, f)
    out_json = tmp_path / "fid.json"
    assert main(["fidelity", str(f), "--dt", "1e-3", "--random", "3", "--steps", "40", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "agreement" in text and "attribution" in text and "integer vs all" in text
    doc = json.loads(out_json.read_text())
    assert set(doc["layers"]) == {"c"} and set(doc["attribution"]) >= set(EFFECTS) | {"all", "integer_vs_all"}
    prog = _quiet(compile_graph, g, "loihi2")
    prog.metadata["file"] = "net.nir"
    build = tmp_path / "build"
    prog.save(build)
    x = (rng(0).random((2, 30, 4)) < 0.3).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    assert main(["fidelity", str(build), "--input", str(tmp_path / "x.npy"), "--no-attribution"]) == 0
    assert "2 sample(s) x 30 steps" in capsys.readouterr().out


def test_cli_fidelity_bad_input_is_one_error_line(tmp_path, capsys):
    g = _cuba_net()
    f = tmp_path / "net.nir"
    export(g, f)
    assert main(["fidelity", str(tmp_path / "missing.nir"), "--random", "2"]) == 1
    assert main(["fidelity", str(f), "--dt", "1e-3", "--input", str(tmp_path / "none.npy")]) == 1
    np.save(tmp_path / "bad.npy", np.zeros((2, 10, 5), np.int32))
    assert main(["fidelity", str(f), "--dt", "1e-3", "--input", str(tmp_path / "bad.npy")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "none.npy" in err[1] and "(batch, time, 4)" in err[2]


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/nir-paper not present")
@pytest.mark.parametrize("name", ["braille_noDelay_bias_zero.nir", "braille_noDelay_noBias_subtract.nir",
                                  "braille_noDelay_bias_zero_subgraph.nir", "lif_norse.nir",
                                  pytest.param("cnn_sinabs.nir", marks=pytest.mark.slow)])
def test_cli_fidelity_on_every_nir_paper_graph(name, capsys):
    reset = "subtract" if "subtract" in name else "zero"
    assert main(["fidelity", str(DATA / name), "--dt", "1e-4", "--reset", reset, "--random", "2", "--steps",
                 "40"]) == 0
    text = capsys.readouterr().out
    assert "float source vs integer program" in text and "integer vs all" in text


def test_format_lists_every_layer():
    rep = _quiet(fidelity, _cuba_net(), random=2, steps=20)
    txt = format_fidelity(rep)
    assert "c " in txt and "weights" in txt and "decays" in txt


def test_fidelity_of_a_graph_ending_in_a_linear_layer():
    """The compiled readout's voltage is compared with the running sum of the float graph's output."""
    r = rng(8)
    g = Graph([Input("in", shape=(4,)), Affine("fc1", weight=r.normal(0, 1.0, (6, 4)), bias=np.zeros(6)),
               LIF("h", shape=(6,), tau=5e-3, v_threshold=0.3),
               Affine("fc2", weight=r.normal(0, 1.0, (3, 6)), bias=np.array([0.1, 0.0, -0.1])),
               Output("out", shape=(3,))], [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "out")], dt=DT)
    rep = _quiet(fidelity, g, random=4, steps=60, rate=0.3)
    assert rep.output == "out.readout" and set(rep.layers) == {"h", "out.readout"}
    ro = rep.layers["out.readout"]
    assert np.isnan(ro.agreement) and ro.count_corr > 0.95 and ro.argmax_agreement >= 0.75
    assert "out.readout" in format_fidelity(rep)
