"""benchmarks/lnp.py --ablate --equal-tuning: the (recurrent gain, input gain) grid is searched for every method on
the validation split, and the dense and randomly pruned networks get LNP's timescale step."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import lnp as bench  # noqa: E402

TINY = dict(n_rec=16, epochs=1, n_train=4, n_val=2, n_test=2, window=20, n_per_dim=4, mnist_train=20, mnist_val=10,
            mnist_test=10, mnist_epochs=1, lrs=[3e-3, 1e-2],
            lnp=dict(bo_init=2, bo_iter=1, gain_steps=300, lyap_steps=150, lyap_transient=30, mc_steps=400,
                     mc_delays=4, mc_validation_draws=2, betweenness_k=None))


def test_equal_tuning_chooses_gains_and_lr_on_validation_for_every_method():
    gains = [[0.5, 1.0], [1.0, 2.0]]
    r = bench.run_ablate_case(dict(task="lorenz63", seed=0, settings=TINY, variants=["lnp"], with_dense=True,
                                   equal_bo=True, gains=gains))
    assert set(r["methods"]) == {"lnp", "random", "dense", "ap", "magnitude"}
    for name, m in r["methods"].items():
        grid = m["val_by_lr"]
        expect = 2 if name in ("ap", "magnitude") else 4  # AP/magnitude prune the dense network at its gains
        assert len(grid) == expect, (name, grid)
        assert m["val_error"] == min(grid.values())  # the reported trial is the validation-best one
        assert grid[f"{m['gains'][0]:g}:{m['gains'][1]:g}@{m['lr']}"] == m["val_error"]
        assert m["gains"] in gains
    for name in ("ap", "magnitude"):
        assert r["methods"][name]["gains"] == r["methods"]["dense"]["gains"]
    # the random baseline has LNP's counts at its own chosen gains; LNP's reports are kept per gain pair
    assert set(r["lnp_reports"]) == {"lnp@0.5:1", "lnp@1:2"}
    g = r["methods"]["random"]["gains"]
    rep = r["lnp_reports"][f"lnp@{g[0]:g}:{g[1]:g}"]
    assert r["methods"]["random"]["neurons"] == rep["n_neurons_after"]
    assert r["methods"]["random"]["recurrent_synapses"] == rep["n_synapses_after"]
    # the timescale step ran on the baselines of each gain pair and says whether it was taken
    assert set(r["timescale_step"]) == {"0.5:1", "1:2"}
    for v in r["timescale_step"].values():
        assert set(v) == {"dense", "random"} and all("accepted" in x for x in v.values())


def test_gains_option_is_checked(capsys):
    with pytest.raises(SystemExit, match="REC:IN"):
        bench._parse_gain("0.5")
    with pytest.raises(SystemExit, match="> 0"):
        bench._parse_gain("0:1")
    assert bench._parse_gain("1:2") == [1.0, 2.0]


def test_report_names_equal_tuning_results(tmp_path, capsys):
    r = bench.run_ablate_case(dict(task="lorenz63", seed=0, settings=TINY, variants=["lnp"], with_dense=True,
                                   equal_bo=True, equal_total=True, gains=[[0.5, 1.0]]))
    data = {"run": {"settings": {"equal_total": True, "equal_tuning": True, "gains": [[0.5, 1.0]]}},
            "results": [dict(r, seed=k) for k in range(3)]}
    bench.ablate_report(json.loads(json.dumps(data)), None)
    out = capsys.readouterr().out
    assert "RESULT equal_tuning_equal_total_lnp_beats_random_tasks 0" in out  # identical seeds: no interval < 0
    assert "RESULT equal_tuning_equal_total_dense_tuned 1" in out
    assert "magnitude" not in r["methods"]  # --equal-total leaves magnitude pruning out


def test_drift_measures_what_training_changed():
    import copy

    import lnp_drift
    from toolchain.nn.hrsnn import HRSNN
    from toolchain.prune.lnp import LNPConfig, measurement_kwargs
    kw = measurement_kwargs(LNPConfig(lyap_steps=150, lyap_transient=30))[0]
    m = HRSNN(3, 12, 2, rec_gain=0.5, seed=1)
    same = lnp_drift.drift(m, copy.deepcopy(m), kw)
    assert same["rec_change"] == 0 and same["in_change"] == 0 and same["rec_corr"] == pytest.approx(1.0)
    assert same["excess_init"] == same["excess_trained"] and same["lambda_init"] == same["lambda_trained"]
    moved = copy.deepcopy(m)
    net = moved.recurrent_net()
    moved.set_recurrent(2.0 * net.w_rec)
    d = lnp_drift.drift(m, moved, kw)
    assert d["rec_change"] == pytest.approx(1.0) and d["rec_corr"] == pytest.approx(1.0) and d["in_change"] == 0
    r = lnp_drift.run_case(dict(task="rossler", seed=0, settings=TINY))
    assert set(r["methods"]) == {"dense", "lnp", "random"}
    for v in r["methods"].values():
        assert v["rec_change"] > 0 and v["lr"] in TINY["lrs"] and np.isfinite(v["excess_trained"])
    assert r["methods"]["random"]["recurrent_synapses"] == r["methods"]["lnp"]["recurrent_synapses"]


def test_from_json_marks_every_result_as_re_printed(tmp_path, capsys):
    """--from-json re-prints a saved run: the banner names file, date and commit, and every RESULT line is marked."""
    import lnp_drift
    from common.provenance import run_info
    meth = {"error": 0.3, "rec_change": 1.5, "rec_corr": 0.6, "in_change": 0.8, "excess_init": 1.0,
            "excess_trained": -0.5, "lambda_init": -30.0, "lambda_trained": -31.0}
    saved = {"run": run_info({"quick": True}),
             "results": [{"task": "lorenz63", "seed": k, "methods": {n: dict(meth) for n in lnp_drift.METHODS}}
                         for k in range(2)]}
    path = tmp_path / "drift.json"
    path.write_text(json.dumps(saved))
    assert lnp_drift.main(["--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"RE-PRINTED from {path} — run {saved['run']['date_utc']}")
    results = [ln for ln in out.splitlines() if ln.startswith("RESULT")]
    assert "RESULT lnp_drift_rec_change_lnp 1.500" in out and len(results) == 7
    assert all(ln.endswith(f"(re-printed from {path}, run {saved['run']['date_utc']})") for ln in results)
