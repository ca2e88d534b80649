"""Cutoff with the window-margin score and pooled thresholds (toolchain.runtime.cutoff.window_margin /
score_series / calibrate(window=, pooled=) / CutoffPolicy.hook): by-hand values, and the online runs (stateful
hook on the reference simulator, PyTorch and Lava) against the post-hoc exit steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.errors import InputError, ToolchainError
from toolchain.runtime import cutoff as co

# the by-hand example of test_cutoff.py (four samples, three steps, two classes)
from test_cutoff import LAB, OUT, assert_equal_until_exit  # noqa: E402


def test_window_margin_by_hand():
    acc = co.accumulate(OUT)
    # W = 1: the margin of argmax Y(t) in out(t) alone
    np.testing.assert_array_equal(co.score_series(acc, "topk", window=1), [[2, 1, 1], [1, 2, 1], [1, 0, 3], [4, 0, 0]])
    # W = 2: Y(t) - Y(t-2), Y(t-2) = 0 for t <= 2
    np.testing.assert_array_equal(co.score_series(acc, "topk", window=2), [[2, 3, 2], [1, 1, 3], [1, 1, 3], [4, 4, 0]])
    # W = 0, or a window back to the start, is the published gap of Y(t)
    np.testing.assert_array_equal(co.score_series(acc, "topk", window=0), co.topk_gap(acc))
    np.testing.assert_array_equal(co.score_series(acc, "topk", window=3), co.topk_gap(acc))
    # negative when the last W steps favour another class than argmax Y(t): Y = [5,0] [5,1], W = 1 -> 0 - 1
    assert co.window_margin(np.array([5.0, 1.0]), np.array([5.0, 0.0])) == -1.0
    with pytest.raises(InputError, match="window"):
        co.score_series(acc, "softmax", window=2)


def test_pooled_threshold_by_hand():
    # stably correct: A 1 1 1, B 0 1 1, C 0 0 1, D 1 1 1; gaps of Y at steps 1, 2: A 2 3, B 1 1, C 1 1, D 4 4.
    # eps = 0: beta = 0 lets everyone out at step 1 (B, C wrong); beta = 1 (the smallest positive score, the
    # first quantile) lets A and D out at step 1, both right: one threshold for steps 1 and 2, inf at T.
    pol = co.calibrate(OUT, LAB, eps=0.0, pooled=True)
    np.testing.assert_array_equal(pol.thresholds, [1.0, 1.0, np.inf])
    np.testing.assert_array_equal(co.exit_steps(pol, OUT), [1, 3, 3, 1])
    # eps = 0.5: everyone out at step 1 is right in 2 of 4 -> beta = 0
    np.testing.assert_array_equal(co.calibrate(OUT, LAB, eps=0.5, pooled=True).thresholds, [0.0, 0.0, np.inf])
    # with a Clopper-Pearson level, 2 of 2 right is not enough support for 1 - eps = 0.5: 0.1 ** (1/2) < 0.5
    assert np.all(np.isinf(co.calibrate(OUT, LAB, eps=0.5, pooled=True, confidence_level=0.9).thresholds))
    # window 1, eps = 0: scores at steps 1, 2: A 2 1, B 1 2, C 1 0, D 4 0; beta = 1 lets A (step 1), B (step 2,
    # stably correct there) and D (step 1) out: 3 of 3 right
    pol_w = co.calibrate(OUT, LAB, eps=0.0, window=1, pooled=True)
    np.testing.assert_array_equal(pol_w.thresholds, [1.0, 1.0, np.inf])
    np.testing.assert_array_equal(co.exit_steps(pol_w, OUT), [1, 2, 3, 1])
    assert pol_w.window == 1 and pol_w.pooled and co.evaluate(pol_w, OUT, LAB)["accuracy"] == 1.0


def _online(policy: co.CutoffPolicy, outputs: np.ndarray) -> np.ndarray:
    """Drive ``policy.hook()`` as the simulator does: only the running samples' rows, finished ones removed."""
    acc = co.accumulate(outputs)
    hook = policy.hook()
    active = np.arange(len(acc))
    steps = np.full(len(acc), outputs.shape[1])
    for t in range(outputs.shape[1]):
        stop = np.asarray(hook(t, acc[active, t]), dtype=bool)
        steps[active[stop]] = t + 1
        active = active[~stop]
    assert active.size == 0
    return steps


def test_window_hook_keeps_history_of_running_samples_only():
    rng = np.random.default_rng(0)
    out = rng.normal(size=(60, 12, 4))
    lab = rng.integers(0, 4, 60)
    for w in (1, 3, 5):
        pol = co.CutoffPolicy(np.r_[np.linspace(2.5, 0.5, 11), np.inf], window=w)
        post = co.exit_steps(pol, out)
        assert len(np.unique(post)) > 3, "the test needs samples leaving at different steps"
        np.testing.assert_array_equal(_online(pol, out), post)
        np.testing.assert_array_equal(_online(pol, out), post)  # a second run through a new hook starts afresh
    pol = co.calibrate(out, lab, eps=0.3, window=3, pooled=True)
    np.testing.assert_array_equal(_online(pol, out), co.exit_steps(pol, out))
    # one hook reused for a second run restarts at t == 0
    hook = pol.hook()
    acc = co.accumulate(out)
    first = [hook(t, acc[:, t]) for t in range(2)]
    again = [hook(t, acc[:, t]) for t in range(2)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_window_policy_errors_and_json(tmp_path):
    pol = co.calibrate(OUT, LAB, eps=0.0, window=2, pooled=True)
    with pytest.raises(InputError, match="acc_back"):
        pol.should_exit(0, co.accumulate(OUT)[:, 0])
    with pytest.raises(InputError, match="window"):
        co.CutoffPolicy(np.zeros(3), kind="softmax", window=2)
    with pytest.raises(InputError, match="window"):
        co.CutoffPolicy(np.zeros(3), window=-1)
    with pytest.raises(InputError, match="window"):
        co.calibrate(OUT, LAB, kind="softmax", window=2)
    hook = pol.hook()
    hook(0, np.zeros((4, 2)))
    with pytest.raises(InputError, match="accumulated_output"):
        hook(1, np.zeros((3, 2)))  # rows must be the samples still running
    back = co.CutoffPolicy.load(pol.save(tmp_path / "p.json"))
    assert back.window == 2 and back.pooled
    np.testing.assert_array_equal(back.thresholds, pol.thresholds)
    d = co.calibrate(OUT, LAB, eps=0.0).to_dict()
    d.pop("window"), d.pop("pooled")  # a policy written before the window existed
    old = co.CutoffPolicy.from_dict(d)
    assert old.window == 0 and not old.pooled
    with pytest.raises(ToolchainError, match="window"):
        co.CutoffPolicy.from_dict({**d, "window": -3}, file="p.json")


def test_select_rule_with_window_rules():
    rng = np.random.default_rng(2)
    lab = rng.integers(0, 3, 200)
    onset = rng.integers(0, 10, 200)
    out = rng.normal(0.0, 1.0, (200, 16, 3))
    for i in range(200):  # the class's evidence arrives at a per-sample onset, noise before it
        out[i, onset[i]:onset[i] + 4, lab[i]] += 4.0
    best, sweep = co.select_rule(out, lab, max_drop=0.01, rules=co.WINDOW_RULES)
    assert len(sweep) == len(co.WINDOW_RULES) * len(co.DEFAULT_EPS_SWEEP)
    assert {(r["target"], r["sequential"], r["window"], r["pooled"]) for r in sweep} == set(co.WINDOW_RULES)
    assert {"window", "pooled", "eps", "accuracy", "mean_steps"} <= set(best)
    # the choice is the fewest cross-fitted steps within the drop bound
    base = co.accuracy_per_step(out, lab)[-1]
    ok = [r for r in sweep if r["accuracy"] >= base - 0.01 - 1e-12]
    assert best["mean_steps"] == min(r["mean_steps"] for r in ok)
    with pytest.raises(InputError, match="rule"):
        co.select_rule(out, lab, rules=(("stable", False, 4),))


# ---------------------------------------------------------------------------------------------------------
# Online runs: reference simulator, PyTorch, Lava
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("readout", [False, True])
def test_reference_simulator_window_hook_equals_post_hoc(readout):
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program

    prog = int_program((12, 16, 5), seed=3, readout=readout)
    x = int_inputs(prog, 64, 24, rate=0.3, seed=4)
    full = simulate(prog, x, record=True)
    outputs = full.output.astype(np.float64)
    lab = np.argmax(outputs.sum(1), axis=1)
    lab[:10] = (lab[:10] + 1) % outputs.shape[2]
    pol = co.calibrate(outputs, lab, eps=0.2, window=4, pooled=True)
    post = co.exit_steps(pol, outputs)
    assert len(np.unique(post)) > 2, "the test needs samples exiting at different steps"
    ex = simulate(prog, x, record=True, early_exit=pol.hook())
    np.testing.assert_array_equal(ex.steps_run, post)
    np.testing.assert_array_equal(np.argmax(ex.accumulated_output(), axis=1), co.predictions_at_exit(outputs, post))
    # the torch backend drives the same hook contract (rows of the running samples only)
    ex_t = co.simulate_with_cutoff(prog, x, backend="torch", policy=pol)
    np.testing.assert_array_equal(ex_t.steps_run, post)
    np.testing.assert_array_equal(ex_t.output, ex.output)
    assert_equal_until_exit(full, ex, post)


def test_run_with_cutoff_window_policy():
    from toolchain.nn import LI, LIF, SpikingNet

    torch.manual_seed(0)
    net = SpikingNet(torch.nn.Linear(12, 16), LIF(16, alpha=0.9, threshold=0.5), torch.nn.Linear(16, 4),
                     LI(4, alpha=0.8)).double()
    x = torch.as_tensor((np.random.default_rng(1).random((40, 12, 12)) < 0.3).astype(np.float64))
    with torch.no_grad():
        full = net(x).numpy()
    lab = np.argmax(full.sum(1), axis=1)
    lab[:8] = (lab[:8] + 1) % 4
    pol = co.calibrate(full, lab, eps=0.1, window=3)
    res = co.run_with_cutoff(net, x, pol)
    post = co.exit_steps(pol, full)
    assert 1 < len(np.unique(post))
    np.testing.assert_array_equal(res["steps"], post)
    np.testing.assert_array_equal(res["predictions"], co.predictions_at_exit(full, post))
    assert res["sample_steps"] == int(post.sum())


def test_lava_window_policy_agrees_with_reference():
    pytest.importorskip("lava")
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program

    prog = int_program((12, 16, 5), seed=3)
    x = int_inputs(prog, 5, 16, rate=0.3, seed=4)
    outputs = simulate(prog, x).output.astype(np.float64)
    pol = co.calibrate(outputs, np.argmax(outputs.sum(1), axis=1), eps=0.1, window=2, pooled=True)
    ref = simulate(prog, x, early_exit=pol.hook())
    assert ref.steps_run.min() < 16, "the test needs an early exit"
    lava = co.run_lava_with_cutoff(prog, x, pol)
    np.testing.assert_array_equal(lava.steps_run, ref.steps_run)
    np.testing.assert_array_equal(lava.output, ref.output)


# ---------------------------------------------------------------------------------------------------------
# CLI: snnc calibrate --window / --pooled / --select-rule
# ---------------------------------------------------------------------------------------------------------

def test_cli_calibrate_window_and_select_rule(tmp_path, capsys):
    from test_cutoff import _labels_for
    from toolchain.cli.main import main
    from toolchain.program import Program
    from toolchain.sim.reference import simulate
    from toolchain.testing import int_inputs, int_program

    prog = int_program((12, 16, 5), seed=3)
    build = tmp_path / "build"
    prog.save(build)
    x = int_inputs(prog, 80, 20, rate=0.3, seed=5)
    outputs = simulate(prog, x, steps=20).output
    lab = _labels_for(outputs.astype(float), 8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", lab)
    args = ["--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--steps", "20"]

    # an explicit window rule: the stored policy is the library's calibrate() with the same settings
    assert main(["calibrate", str(build), *args, "--eps", "0.1", "--window", "4", "--pooled", "--target", "final",
                 "--sequential"]) == 0
    assert "window=4, pooled" in capsys.readouterr().out
    pol = co.load_policy(build)
    ref = co.calibrate(outputs, lab, eps=0.1, window=4, pooled=True, target="final", sequential=True)
    assert (pol.window, pol.pooled, pol.target, pol.sequential) == (4, True, "final", True)
    np.testing.assert_array_equal(pol.thresholds, ref.thresholds)
    # snnc simulate --cutoff runs the stored window policy online: its exits are the post-hoc ones
    assert main(["simulate", str(build), "-i", str(tmp_path / "x.npy"), "--steps", "20", "--cutoff",
                 "-o", str(tmp_path / "run.npz")]) == 0
    capsys.readouterr()
    with np.load(tmp_path / "run.npz") as z:
        np.testing.assert_array_equal(z["steps_run"], co.exit_steps(pol, outputs))

    # --select-rule: the (rule, eps) pair select_rule picks among WINDOW_RULES, recorded in the calibration
    assert main(["calibrate", str(build), *args, "--select-rule", "--max-drop", "1"]) == 0
    assert "chosen by 5-fold cross-fitting" in capsys.readouterr().out
    best, _ = co.select_rule(outputs, lab, max_drop=0.01, rules=co.WINDOW_RULES)
    pol = co.load_policy(build)
    assert (pol.target, pol.sequential, pol.window, pol.pooled, pol.eps) == \
        (best["target"], best["sequential"], best["window"], best["pooled"], best["eps"])
    sel = Program.load(build).metadata["cutoff"]["calibration"]["selected"]
    assert sel["max_drop_points"] == 1 and sel["crossfit_mean_steps"] == pytest.approx(best["mean_steps"])

    # bad settings: exit status 1, the option named, the build untouched
    before = (build / "program.json").read_text()
    assert main(["calibrate", str(build), *args, "--kind", "softmax", "--window", "4"]) == 1
    assert "window" in capsys.readouterr().err
    assert main(["calibrate", str(build), *args, "--kind", "softmax", "--select-rule"]) == 1
    assert "--select-rule" in capsys.readouterr().err
    assert (build / "program.json").read_text() == before
