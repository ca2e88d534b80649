"""Cutoff: calibration of per-step Top-K thresholds, post-hoc and online (torch, reference simulator, Lava) exit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toolchain.errors import InputError, ToolchainError
from toolchain.runtime import cutoff as co

# Four samples, three steps, two classes; per-step outputs (not accumulated).
#   A (label 0): Y = [2,0] [3,0] [4,0]  gaps 2 3 4  correct at 1 2 3
#   B (label 0): Y = [0,1] [2,1] [3,1]  gaps 1 1 2  correct at   2 3
#   C (label 1): Y = [1,0] [1,0] [1,3]  gaps 1 1 2  correct at     3
#   D (label 1): Y = [0,4] [0,4] [0,4]  gaps 4 4 4  correct at 1 2 3
OUT = np.array([
    [[2, 0], [1, 0], [1, 0]],
    [[0, 1], [2, 0], [1, 0]],
    [[1, 0], [0, 0], [0, 3]],
    [[0, 4], [0, 0], [0, 0]],
], dtype=float)
LAB = np.array([0, 0, 1, 1])


def assert_equal_until_exit(full, ex, post) -> None:
    """Every spike, u and v of the early-exit record ``ex`` equals the full run's before each sample's exit step
    ``post``; nothing is recorded after it."""
    live = np.arange(full.steps)[None, :] < post[:, None]
    for fld in ("spikes", "u", "v"):
        for g, a in getattr(full, fld).items():
            b = getattr(ex, fld)[g]
            np.testing.assert_array_equal(b[live], a[live], err_msg=f"{fld} of {g}")
            assert not b[~live].any(), f"{fld} of {g} after exit"


def test_accumulate_gap_and_stability_by_hand():
    acc = co.accumulate(OUT)
    np.testing.assert_array_equal(acc[1], [[0, 1], [2, 1], [3, 1]])
    np.testing.assert_array_equal(co.topk_gap(acc), [[2, 3, 4], [1, 1, 2], [1, 1, 2], [4, 4, 4]])
    correct = co.correct_matrix(OUT, LAB)
    np.testing.assert_array_equal(correct, [[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(co.stably_correct(correct), correct)  # no sample flips back here
    stable = co.stably_correct(np.array([[1, 0, 1], [0, 1, 1]], bool))
    np.testing.assert_array_equal(stable, [[0, 0, 1], [0, 1, 1]])


def test_calibrate_thresholds_hand_checked():
    pol = co.calibrate(OUT, LAB, eps=0.0)
    # Steps 1 and 2: B and C (gap 1) must not exit, so beta is the first grid value >= 1 on linspace(0, 4, 100):
    # k * 4/99 >= 1 -> k = 25 -> 100/99. Step 3: everyone is stably correct -> beta = 0.
    np.testing.assert_allclose(pol.thresholds, [100 / 99, 100 / 99, 0.0])
    # eps = 0.5 at step 1 allows 2 wrong of 4 exits -> 0; step 2: 3 of 4 stable (C not) -> 0.
    np.testing.assert_allclose(co.calibrate(OUT, LAB, eps=0.5).thresholds, [0, 0, 0])
    # eps = 0.25: step 1 has 2/4 stable at beta=0 and 2/2 above 1 -> 100/99; step 2 has 3/4 at beta=0 -> 0.
    np.testing.assert_allclose(co.calibrate(OUT, LAB, eps=0.25).thresholds, [100 / 99, 0, 0])
    assert pol.calibration["samples"] == 4 and pol.calibration["accuracy_full"] == 1.0


def test_exit_steps_oracle_and_evaluate():
    pol = co.calibrate(OUT, LAB, eps=0.0)
    np.testing.assert_array_equal(co.exit_steps(pol, OUT), [1, 3, 3, 1])
    np.testing.assert_array_equal(co.oracle_exit_steps(OUT, LAB), [1, 2, 3, 1])
    res = co.evaluate(pol, OUT, LAB)
    assert res["accuracy"] == 1.0 and res["mean_steps"] == 2.0 and res["step_reduction"] == 1.5
    oct_ = co.evaluate(None, OUT, LAB)
    assert oct_["mean_steps"] == 7 / 4 and oct_["accuracy"] == 1.0
    fixed = co.evaluate(co.fixed_policy(3), OUT, LAB)
    np.testing.assert_array_equal(fixed["steps"], [3, 3, 3, 3])
    # eps=0.5 lets B and C leave at step 1 with wrong answers.
    loose = co.evaluate(co.calibrate(OUT, LAB, eps=0.5), OUT, LAB)
    np.testing.assert_array_equal(loose["steps"], [1, 1, 1, 1])
    assert loose["accuracy"] == 0.5


def test_no_qualifying_threshold_is_inf_and_ties_never_exit():
    # One sample, wrong until the last step, with a large gap at step 1: no beta qualifies there.
    out = np.array([[[5, 0], [0, 0], [0, 9]]], float)
    pol = co.calibrate(out, np.array([1]), eps=0.0)
    assert np.isinf(pol.thresholds[0]) and np.isinf(pol.thresholds[1])
    assert co.exit_steps(pol, out)[0] == 3
    # All-zero output: gap 0 never exceeds beta >= 0.
    z = np.zeros((2, 4, 3))
    assert np.all(co.exit_steps(co.CutoffPolicy(np.zeros(4)), z) == 4)


def test_softmax_kind():
    pol = co.calibrate(OUT, LAB, eps=0.0, kind="softmax", temperature=1.0)
    conf = co.softmax_confidence(co.accumulate(OUT))
    np.testing.assert_allclose(conf[0, 0], 1 / (1 + np.exp(-2)))
    # At step 1 only A and D may exit: beta must lie at or above the confidence of B/C (gap 1) and below A's.
    b1 = pol.thresholds[0]
    assert 1 / (1 + np.exp(-1)) <= b1 < 1 / (1 + np.exp(-2))
    np.testing.assert_array_equal(co.exit_steps(pol, OUT), [1, 3, 3, 1])
    # non-binary outputs get a temperature of one class-spread of Y(T): the logits' scale does not matter
    auto = co.calibrate(OUT * 1000.0, LAB, eps=0.0, kind="softmax")
    assert auto.temperature == pytest.approx(1000.0 * np.mean(co.accumulate(OUT)[:, -1].std(axis=-1)))
    np.testing.assert_array_equal(co.exit_steps(auto, OUT * 1000.0), [1, 3, 3, 1])
    assert co.CutoffPolicy.from_dict(auto.to_dict()).temperature == auto.temperature


def test_policy_json_roundtrip_and_program_metadata(tmp_path):
    pol = co.calibrate(OUT, LAB, eps=0.0)
    pol.thresholds[1] = np.inf
    p = pol.save(tmp_path / "cutoff.json")
    d = json.loads(p.read_text())
    assert d["thresholds"][1] is None
    back = co.CutoffPolicy.load(p)
    np.testing.assert_array_equal(back.thresholds, pol.thresholds)
    assert back.kind == "topk" and back.eps == 0.0 and back.calibration == pol.calibration

    class _Prog:
        metadata: dict = {}

    prog = _Prog()
    prog.metadata = {}
    co.attach_policy(prog, pol)
    json.dumps(prog.metadata)  # JSON-safe
    np.testing.assert_array_equal(co.policy_from_program(prog).thresholds, pol.thresholds)
    assert co.load_policy(p).steps == 3
    (tmp_path / "bad.json").write_text("{\"format\": \"x\"}")
    with pytest.raises(ToolchainError, match="bad.json"):
        co.CutoffPolicy.load(tmp_path / "bad.json")


def test_bad_inputs_name_the_field():
    with pytest.raises(InputError, match="outputs"):
        co.calibrate(np.zeros((3, 4)), np.zeros(3, int))
    with pytest.raises(InputError, match="labels"):
        co.calibrate(OUT, np.array([0, 1, 2, 0]))
    with pytest.raises(InputError, match="eps"):
        co.calibrate(OUT, LAB, eps=1.5)


def test_hook_matches_post_hoc():
    pol = co.calibrate(OUT, LAB, eps=0.0)
    hook = pol.hook()
    acc = co.accumulate(OUT)
    fired = np.stack([hook(t, acc[:, t]) for t in range(3)], axis=1)
    first = np.argmax(fired, axis=1) + 1
    np.testing.assert_array_equal(first, co.exit_steps(pol, OUT))
    assert np.all(fired[:, -1])


# ---------------------------------------------------------------------------------------------------------
# Online exit in PyTorch
# ---------------------------------------------------------------------------------------------------------

def _torch_net(seed: int = 0):
    from toolchain.nn import LI, LIF, CubaLIF, Recurrent, SpikingNet

    torch.manual_seed(seed)
    net = SpikingNet(torch.nn.Linear(12, 16), LIF(16, alpha=0.9, threshold=0.5),
                     torch.nn.Linear(16, 10), Recurrent(CubaLIF(10, 0.8, 0.9, threshold=0.4), 10),
                     torch.nn.Linear(10, 4), LI(4, alpha=0.8))
    return net.double()


def test_run_with_cutoff_equals_full_run_cut_at_exit():
    net = _torch_net()
    rng = np.random.default_rng(1)
    x = torch.as_tensor((rng.random((40, 12, 12)) < 0.3).astype(np.float64))
    labels = rng.integers(0, 4, 40)
    with torch.no_grad():
        full = net(x).numpy()
    labels = np.argmax(full.sum(1), axis=1)  # labels the full run gets right, so thresholds are finite
    labels[:8] = (labels[:8] + 1) % 4
    pol = co.calibrate(full, labels, eps=0.2)
    res = co.run_with_cutoff(net, x, pol, return_outputs=True)
    post = co.exit_steps(pol, full)
    np.testing.assert_array_equal(res["steps"], post)
    assert 1 < len(np.unique(post)), "the test needs samples exiting at different steps"
    np.testing.assert_array_equal(res["predictions"], co.predictions_at_exit(full, post))
    for i, k in enumerate(post):
        np.testing.assert_allclose(res["outputs"][i, :k], full[i, :k], rtol=0, atol=1e-12)
        assert np.all(np.isnan(res["outputs"][i, k:]))
    assert res["sample_steps"] == int(post.sum())  # work really dropped


def test_policy_stored_with_a_saved_program(tmp_path):
    from toolchain.ir.storage import Dense
    from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup

    z = np.zeros(2, int)
    prog = Program({"o": NeuronGroup("o", (2,), du=z, dv=z, vth=np.full(2, 5), bias_mant=z, bias_exp=z)},
                   [SynapseGroup("w", "in", "o", Dense(np.eye(2, dtype=np.int16)))], [InputPort("in", (2,))],
                   output="o")
    prog.save(tmp_path / "b0")
    with pytest.raises(ToolchainError, match="metadata.cutoff"):
        co.load_policy(tmp_path / "b0")
    pol = co.calibrate(OUT, LAB, eps=0.0)
    co.attach_policy(prog, pol)
    prog.save(tmp_path / "build")
    back = co.load_policy(tmp_path / "build")
    np.testing.assert_array_equal(back.thresholds, pol.thresholds)


def test_tradeoff_curves_and_plot(tmp_path):
    curves = co.tradeoff_curves(OUT, LAB, OUT, LAB, eps_values=(0.0, 0.5))
    np.testing.assert_allclose(curves["fixed"]["accuracy"], [0.5, 0.75, 1.0])
    assert curves["topk"]["mean_steps"] == [2.0, 1.0] and curves["topk"]["accuracy"] == [1.0, 0.5]
    assert curves["oct"]["mean_steps"] == [7 / 4]
    png = co.plot_tradeoff(curves, tmp_path / "plot.png", title="toy", marks={"chosen": (2.0, 1.0)})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------
# Online exit on the reference simulator
# ---------------------------------------------------------------------------------------------------------

def _labels_for(outputs: np.ndarray, flip: int, seed: int = 0) -> np.ndarray:
    """Labels the full run mostly gets right (so that thresholds are finite), ``flip`` of them wrong."""
    lab = np.argmax(outputs.sum(1), axis=1)
    idx = np.random.default_rng(seed).choice(len(lab), flip, replace=False)
    lab[idx] = (lab[idx] + 1) % outputs.shape[2]
    return lab


@pytest.mark.parametrize("kind", ["spiking", "readout", "recurrent-delays"])
def test_reference_simulator_hook_equals_post_hoc_exit(kind):
    from toolchain.runtime import metrics as M
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program

    opts = {"spiking": {"seed": 3}, "readout": {"seed": 3, "readout": True},
            "recurrent-delays": {"seed": 5, "recurrent": True, "max_delay": 2, "storage": "mixed"}}[kind]
    prog = int_program((12, 16, 5), **opts)
    x = int_inputs(prog, 64, 24, rate=0.3, seed=4)
    full = simulate(prog, x, record=True)
    outputs = full.output.astype(np.float64)
    labels = _labels_for(outputs, 10)
    pol = co.calibrate(outputs, labels, eps=0.1)
    post = co.exit_steps(pol, outputs)
    assert len(np.unique(post)) > 2, "the test needs samples exiting at different steps"
    ex = simulate(prog, x, record=True, early_exit=pol.hook())
    np.testing.assert_array_equal(ex.steps_run, post)
    np.testing.assert_array_equal(np.argmax(ex.accumulated_output(), axis=1), co.predictions_at_exit(outputs, post))
    # every spike, u and v before each sample's exit equals the full run's; nothing is computed after it
    assert_equal_until_exit(full, ex, post)
    # the work counted on the early-exit record equals the full record's work cut at the exit steps
    w_ex = M.workload_program(prog, ex, x).as_dict()
    w_cut = M.workload_program(prog, full.spikes, x, steps=post).as_dict()
    for k in ("effective_acs", "synaptic_events", "dense_synops", "neuron_updates", "spikes", "mean_steps"):
        assert w_ex[k] == pytest.approx(w_cut[k]), k
    w_full = M.workload_program(prog, full, x).as_dict()
    assert w_ex["synaptic_events"] < w_full["synaptic_events"]


# ---------------------------------------------------------------------------------------------------------
# CLI: snnc calibrate / snnc report
# ---------------------------------------------------------------------------------------------------------

def test_cli_calibrate_and_report(tmp_path, capsys):
    from toolchain.cli.main import main
    from toolchain.program import Program
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program

    prog = int_program((12, 16, 5), seed=3)
    build = tmp_path / "build"
    prog.save(build)
    x = int_inputs(prog, 80, 20, rate=0.3, seed=5)
    labels = _labels_for(simulate(prog, x).output.astype(float), 8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    args = ["--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--steps", "20"]
    assert main(["calibrate", str(build), *args, "--eps", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "thresholds per step" in out and "fewer" in out
    pol = co.load_policy(build)
    assert pol.kind == "topk" and pol.eps == 0.1 and pol.steps == 20
    assert Program.load(build).metadata["cutoff"]["calibration"]["samples"] == 80

    # snnc simulate --cutoff stops every sample where the stored policy says
    assert main(["simulate", str(build), "-i", str(tmp_path / "x.npy"), "--steps", "20", "--cutoff",
                 "-o", str(tmp_path / "run.npz")]) == 0
    assert "cutoff:" in capsys.readouterr().out
    with np.load(tmp_path / "run.npz") as z:
        ref = simulate(prog, x, steps=20, early_exit=pol.hook())
        np.testing.assert_array_equal(z["steps_run"], ref.steps_run)
        np.testing.assert_array_equal(z["spikes"], ref.output)
    assert ref.steps_run.min() < 20

    assert main(["report", str(build), *args]) == 0
    out = capsys.readouterr().out
    assert "Footprint" in out and "SynapticOperations.Effective_ACs" in out and "MembraneUpdates" in out
    assert "cutoff" in out and "energy_uj" in out
    png = build / "cutoff_tradeoff.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # bad input: labels that do not match the data name the file, exit status 1, build untouched
    np.save(tmp_path / "bad.npy", labels[:5])
    before = (build / "program.json").read_text()
    assert main(["calibrate", str(build), "--data", str(tmp_path / "x.npy"), "--labels",
                 str(tmp_path / "bad.npy")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bad.npy" in err
    assert (build / "program.json").read_text() == before


# ---------------------------------------------------------------------------------------------------------
# Online exit on Lava (one sample at a time, RunSteps(1) per step)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("readout", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_lava_and_reference_agree_on_exits_and_predictions(readout):
    pytest.importorskip("lava")
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program

    prog = int_program((12, 16, 5), seed=3, readout=readout)
    x = int_inputs(prog, 5, 16, rate=0.3, seed=4)
    full = simulate(prog, x)
    outputs = full.output.astype(np.float64)
    pol = co.calibrate(outputs, np.argmax(outputs.sum(1), axis=1), eps=0.1)
    ref = simulate(prog, x, early_exit=pol.hook())
    assert ref.steps_run.min() < 16, "the test needs an early exit"
    lava = co.run_lava_with_cutoff(prog, x, pol)
    assert lava.backend == "lava"
    np.testing.assert_array_equal(lava.steps_run, ref.steps_run)
    np.testing.assert_array_equal(np.argmax(lava.accumulated_output(), axis=1),
                                  np.argmax(ref.accumulated_output(), axis=1))
    np.testing.assert_array_equal(lava.output, ref.output)  # every output value at every step, zero after exit


def test_select_eps_respects_the_drop_bound():
    from toolchain.testing import random_class_outputs

    out, lab = random_class_outputs(300, 12, 3, seed=0)
    base = co.correct_matrix(out, lab)[:, -1].mean()
    eps, sweep = co.select_eps(out, lab, max_drop=0.01)
    chosen = next(r for r in sweep if r["eps"] == eps)
    assert chosen["accuracy"] >= base - 0.01
    assert all(r["mean_steps"] >= chosen["mean_steps"] for r in sweep if r["accuracy"] >= base - 0.01)
    assert any(r["accuracy"] < base - 0.01 for r in sweep), "the bound should exclude some eps here"
    # no eps meets an impossible bound: the smallest eps is the fallback
    assert co.select_eps(out, lab, max_drop=-1.0)[0] == 0.0
    eps_any, sweep_any = co.select_eps(out, lab, max_drop=1.0)
    assert next(r for r in sweep_any if r["eps"] == eps_any)["mean_steps"] == min(r["mean_steps"] for r in sweep_any)
    assert eps_any >= eps


def test_confidence_level_needs_support():
    from scipy.stats import beta

    # Clopper-Pearson lower bound: k = n gives (1 - level)^(1/n); k = 0 gives 0
    np.testing.assert_allclose(co.clopper_pearson_lower(10, 10, 0.9), 0.1 ** (1 / 10))
    np.testing.assert_allclose(co.clopper_pearson_lower(7, 10, 0.9), beta.ppf(0.1, 7, 4))
    assert co.clopper_pearson_lower(0, 5, 0.9) == 0.0
    # The hand-checked set with eps = 0.5 and a 90% bound (needs a lower bound >= 0.5):
    #   step 1: beta = 0 -> 2 of 4 stable (bound < 0.5); beta >= 1 -> A, D: 2 of 2, bound 0.1^(1/2) = 0.32
    #   step 2: beta = 0 -> 3 of 4 (bound Beta^-1(0.1; 3, 2) = 0.32); beta >= 1 -> 2 of 2 (0.32)  -> inf, inf
    #   step 3: all 4 stable, bound 0.1^(1/4) = 0.56 >= 0.5                                        -> 0
    pol = co.calibrate(OUT, LAB, eps=0.5, confidence_level=0.9)
    assert np.isinf(pol.thresholds[0]) and np.isinf(pol.thresholds[1]) and pol.thresholds[2] == 0.0
    assert pol.confidence_level == 0.9 and co.CutoffPolicy.from_dict(pol.to_dict()).confidence_level == 0.9
    # Without the bound the same eps lets everyone leave at step 1.
    assert np.all(co.exit_steps(co.calibrate(OUT, LAB, eps=0.5), OUT) == 1)
    assert np.all(co.exit_steps(pol, OUT) == 3)
