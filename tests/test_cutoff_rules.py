"""Cutoff calibration rules beyond the published one: the "final" target, sequential calibration, and the choice
of rule and eps on held-out data (toolchain.runtime.cutoff.exit_right / calibrate / select_rule)."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.errors import InputError, ToolchainError
from toolchain.runtime import cutoff as co

# Five samples, three steps, two classes; per-step outputs (not accumulated).
#   A (label 0): Y = [2,0] [3,0] [4,0]  preds 0 0 0  correct 1 1 1
#   B (label 0): Y = [0,1] [2,1] [3,1]  preds 1 0 0  correct 0 1 1
#   C (label 1): Y = [1,0] [1,0] [1,3]  preds 0 0 1  correct 0 0 1
#   D (label 1): Y = [0,4] [0,4] [0,4]  preds 1 1 1  correct 1 1 1
#   E (label 0): Y = [0,3] [0,6] [0,9]  preds 1 1 1  wrong throughout (settled on the wrong class)
OUT = np.array([
    [[2, 0], [1, 0], [1, 0]],
    [[0, 1], [2, 0], [1, 0]],
    [[1, 0], [0, 0], [0, 3]],
    [[0, 4], [0, 0], [0, 0]],
    [[0, 3], [0, 3], [0, 3]],
], dtype=float)
LAB = np.array([0, 0, 1, 1, 0])


def test_exit_right_targets_by_hand():
    np.testing.assert_array_equal(co.exit_right(OUT, LAB, "stable"),
                                  [[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    # "final": the prediction at t equals the one at T; E (wrong, but settled) may leave at once
    np.testing.assert_array_equal(co.exit_right(OUT, LAB, "final"),
                                  [[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1], [1, 1, 1]])
    # the labels do not enter the "final" target
    np.testing.assert_array_equal(co.exit_right(OUT, 1 - LAB, "final"), co.exit_right(OUT, LAB, "final"))
    with pytest.raises(InputError, match="target"):
        co.exit_right(OUT, LAB, "oracle")


def test_final_target_lets_settled_wrong_samples_leave_without_loss():
    stable = co.calibrate(OUT, LAB, eps=0.0, grid=100, target="stable")
    final = co.calibrate(OUT, LAB, eps=0.0, grid=100, target="final")
    # gaps at step 1: A 2, B 1, C 1, D 4, E 3. Stable: E (gap 3) is wrong, so beta_1 is the first grid value >= 3
    # on linspace(0, 4, 100), and only D leaves. Final: A, D, E are right, B and C (gap 1) are not: beta_1 is the
    # first grid value >= 1, and A, D and E leave.
    grid = np.linspace(0.0, 4.0, 100)
    assert stable.thresholds[0] == grid[np.argmax(grid >= 3.0)]
    assert final.thresholds[0] == grid[np.argmax(grid >= 1.0)]
    ev_s, ev_f = co.evaluate(stable, OUT, LAB), co.evaluate(final, OUT, LAB)
    np.testing.assert_array_equal(ev_s["steps"][[3, 4]], [1, 3])
    np.testing.assert_array_equal(ev_f["steps"][[0, 3, 4]], [1, 1, 1])
    # same predictions as running to T for every sample, fewer steps
    np.testing.assert_array_equal(ev_f["predictions"], co.predictions(OUT)[:, -1])
    assert ev_f["accuracy"] == ev_s["accuracy"] == 0.8
    assert ev_f["mean_steps"] < ev_s["mean_steps"]
    assert final.target == "final" and stable.target == "stable"


def test_sequential_calibration_uses_only_the_samples_still_running():
    # s0, s1 leave at step 1 (score 10, right). At step 2 all four together are right in 3 of 4 (>= 1 - 0.25), but
    # of the two still running (s2, s3) only one is right: sequential calibration keeps them (beta_2 = inf).
    scores = np.array([[10, 10, 10], [10, 10, 10], [0, 5, 10], [0, 5, 10]], dtype=float)
    right = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 1, 1]], dtype=bool)
    indep = co._thresholds_for(scores, right, eps=0.25, grid=11)
    seq = co._thresholds_for(scores, right, eps=0.25, grid=11, sequential=True)
    assert indep[0] == seq[0] == 0.0
    assert indep[1] == 0.0
    assert seq[1] == np.inf
    # with eps 0.5 the running pair qualifies too (1 of 2 right)
    assert co._thresholds_for(scores, right, eps=0.5, grid=11, sequential=True)[1] == 0.0


def _settled_half_wrong(n: int = 200, steps: int = 6, seed: int = 0):
    """Step 1 silent; from step 2 every sample votes for its class k with gap 5. Half the labels are k (right from
    step 2), half are another class (wrong from step 2 on, settled)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    out = np.zeros((n, steps, 3))
    out[np.arange(n), 1, k] = 5.0
    labels = np.where(np.arange(n) % 2 == 0, k, (k + 1) % 3)
    return out, labels


def test_select_rule_picks_final_where_stable_cannot_exit():
    out, lab = _settled_half_wrong()
    base = co.accuracy_per_step(out, lab)[-1]
    assert base == 0.5
    best, sweep = co.select_rule(out, lab, max_drop=0.002, confidence_level=0.9)
    assert best["target"] == "final" and best["sequential"] is True
    assert best["mean_steps"] == 2.0 and best["accuracy"] == base
    # every (rule, eps) pair is in the sweep; the stable rule can let nobody out (half the exits would be wrong)
    assert len(sweep) == len(co.DEFAULT_RULES) * len(co.DEFAULT_EPS_SWEEP)
    assert all(r["mean_steps"] == 6.0 for r in sweep if r["target"] == "stable")
    only_stable, _ = co.select_rule(out, lab, max_drop=0.002, confidence_level=0.9, rules=(("stable", False),))
    assert only_stable["target"] == "stable" and only_stable["mean_steps"] == 6.0
    pol = co.calibrate(out, lab, eps=best["eps"], target="final", sequential=True, confidence_level=0.9)
    assert co.evaluate(pol, out, lab)["mean_steps"] == 2.0
    with pytest.raises(InputError, match="rules"):
        co.select_rule(out, lab, rules=())
    with pytest.raises(InputError, match="target"):
        co.select_rule(out, lab, rules=(("latest", False),))


def test_select_rule_respects_the_drop_bound():
    # noisy outputs: whatever is chosen, its cross-fitted accuracy is within max_drop of the full run's
    rng = np.random.default_rng(3)
    n, steps = 300, 8
    lab = rng.integers(0, 4, n)
    out = rng.normal(0, 1, (n, steps, 4))
    out[np.arange(n), :, lab] += rng.uniform(0.0, 1.0, n)[:, None]
    base = co.accuracy_per_step(out, lab)[-1]
    best, sweep = co.select_rule(out, lab, max_drop=0.01)
    assert best["accuracy"] >= base - 0.01 - 1e-12
    ok = [r for r in sweep if r["accuracy"] >= base - 0.01 - 1e-12]
    assert best["mean_steps"] == min(r["mean_steps"] for r in ok)


def test_policy_target_roundtrip_and_validation(tmp_path):
    pol = co.calibrate(OUT, LAB, eps=0.1, target="final", sequential=True)
    back = co.CutoffPolicy.load(pol.save(tmp_path / "p.json"))
    assert back.target == "final" and back.sequential is True
    np.testing.assert_array_equal(back.thresholds, pol.thresholds)
    # policies written before the field existed read as the published rule
    d = pol.to_dict()
    del d["target"], d["sequential"]
    old = co.CutoffPolicy.from_dict(d)
    assert old.target == "stable" and old.sequential is False
    with pytest.raises(InputError, match="target"):
        co.calibrate(OUT, LAB, target="best")
    d["target"] = "nonsense"
    with pytest.raises(ToolchainError, match="target"):
        co.CutoffPolicy.from_dict(d, file="p.json")


def test_benchmark_matched_choice_compares_models_at_the_reference_accuracy():
    """benchmarks/cutoff.py's matched comparison: only models within max_drop of the better model's full-run
    calibration accuracy compete; fixed T' is the fewest steps any of them needs to reach that reference, the exit
    row is the candidate with the fewest cross-fitted calibration steps."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from cutoff import matched_choice

    y = np.array([0, 1, 0, 1])
    test = np.zeros((4, 6, 2))
    test[np.arange(4), 2:, y] = 1.0  # right from step 3 on
    test[0, :, 1] += 0.5 * (np.arange(6) < 4)  # sample 0 right only from step 5: accuracy 0.75 at 3, 4
    rows = lambda lab, cal_steps: {f"Top-K horizon ({lab})": {"accuracy": 1.0, "mean_steps": cal_steps,  # noqa: E731
                                                              "cal_mean_steps": cal_steps}}
    raw = lambda acc: {"acc_cal": np.array(acc), "test": test, "y_test": y}  # noqa: E731
    # the no-RCS model reaches its own (lower) full-run accuracy at step 2 but is 10 points below the reference:
    # it is no candidate, although its own fixed budget and exit are shorter
    results = {"no RCS": (rows("no RCS", 2.0), raw([0.6, 0.8, 0.8, 0.8, 0.8, 0.8]), 6),
               "RCS": (rows("RCS", 3.5), raw([0.2, 0.4, 0.6, 0.85, 0.9, 0.9]), 6)}
    fixed, exit_row, fix_lab, exit_lab = matched_choice(results, 0.002)
    assert (fix_lab, exit_lab) == ("RCS", "RCS")
    assert fixed == {"accuracy": 1.0, "mean_steps": 5.0}  # step 5: the first within 0.2 points of 0.9
    assert exit_row["cal_mean_steps"] == 3.5
    # within max_drop of the reference (10 points), both compete: fixed T' takes the shorter budget (step 2, where
    # the no-RCS model reaches 0.8; scored on the test outputs: only sample 2 is right there), the exit the fewer
    # cross-fitted steps
    fixed, exit_row, fix_lab, exit_lab = matched_choice(results, 0.1)
    assert (fix_lab, exit_lab) == ("no RCS", "no RCS")
    assert fixed == {"accuracy": 0.25, "mean_steps": 2.0}
    # a tie in cross-fitted steps goes to the RCS model (the method as published)
    results["RCS"][0]["Top-K horizon (RCS)"]["cal_mean_steps"] = 2.0
    assert matched_choice(results, 0.1)[3] == "RCS"
