"""Multi-objective sweeps (toolchain.sweep, snnc sweep): an Optuna study with 2 worker processes sharing SQLite
(default run) and with 2 Ray workers (slow) on a tiny task, the Pareto front, saved Programs, resume from the
storage, bad sweep files."""
from __future__ import annotations

import json

import pytest

from toolchain.cli.main import main
from toolchain.errors import InputError
from toolchain.program import Program
from toolchain.sweep import OBJECTIVES, _create_study, load_sweep_config, parse_sweep_config

TINY = """
[study]
name = "tiny"
trials = 4
workers = 2
executor = "ray"
objectives = ["accuracy", "cores", "energy"]
out = "{out}"

[task]
steps = 8
train_samples = 120
test_samples = 40
epochs = 1

[space]
lr = {{ low = 2e-3, high = 2e-2, log = true }}
hidden = {{ choices = [8, 16] }}
sparsity = {{ low = 0.0, high = 0.8 }}
reset = {{ choices = ["zero", "subtract"] }}
cutoff_eps = {{ low = 0.0, high = 0.2 }}
"""


def _dominates(a, b, dirs):
    better = [(x > y) if d == "maximize" else (x < y) for x, y, d in zip(a, b, dirs)]
    worse = [(x < y) if d == "maximize" else (x > y) for x, y, d in zip(a, b, dirs)]
    return any(better) and not any(worse)


def _two_workers(tmp_path, capsys, executor, trials):
    """Run the tiny study with 2 workers of ``executor``; check trials, distinct settings, the front, the
    Programs and the plot; returns (config path, finished trials)."""
    import optuna
    out = tmp_path / "out"
    cfg_path = tmp_path / "sweep.toml"
    cfg_path.write_text(TINY.format(out=out.as_posix()).replace('executor = "ray"', f'executor = "{executor}"')
                        .replace("trials = 4", f"trials = {trials}"))
    assert main(["sweep", str(cfg_path)]) == 0
    text = capsys.readouterr().out
    n = int(text.split("RESULT sweep_trials ")[1].split()[0])
    k = int(text.split("RESULT pareto_points ")[1].split()[0])
    assert trials <= n <= trials + 1 and 1 <= k <= n   # the other worker may finish the trial it is in
    assert "by 2 worker(s)" in text and "Pareto front:" in text
    cfg = load_sweep_config(cfg_path)
    study = _create_study(cfg)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == n
    # each worker samples with its own seed: no two trials share their settings
    assert len({json.dumps(t.params, sort_keys=True) for t in done}) == n
    dirs = [OBJECTIVES[o] for o in cfg.objectives]
    front = json.loads((out / "pareto.json").read_text())["rows"]
    on_front = {r["trial"] for r in front}
    assert len(on_front) == k
    for t in done:  # the front is exactly the non-dominated trials
        dominated = any(_dominates(u.values, t.values, dirs) for u in done if u.number != t.number)
        assert (t.number in on_front) == (not dominated)
    for r in front:  # the saved Program is the one measured
        prog = Program.load(out / "pareto" / f"trial_{r['trial']}")
        assert prog.report["cores_used"] == r["cores"]
        assert 0.0 <= r["accuracy"] <= 1.0 and r["energy"] > 0
    assert (out / "pareto.png").stat().st_size > 0 and (out / "pareto.csv").read_text().startswith("trial,")
    return cfg_path, n


def test_two_worker_processes_share_sqlite_and_find_the_front(tmp_path, capsys):
    cfg_path, n = _two_workers(tmp_path, capsys, "processes", trials=2)  # asserts the study, front and Programs
    assert cfg_path.is_file() and n >= 2


@pytest.mark.slow
def test_two_ray_workers_share_the_study_and_it_resumes(tmp_path, capsys):
    cfg_path, n = _two_workers(tmp_path, capsys, "ray", trials=4)
    cfg = load_sweep_config(cfg_path)
    first = {t.number for t in _create_study(cfg).get_trials()}
    # resume: the same storage, serial, one more finished trial; the earlier trials stay
    assert main(["sweep", str(cfg_path), "--executor", "serial", "--trials", str(n + 1)]) == 0
    assert f"RESULT sweep_trials {n + 1}" in capsys.readouterr().out
    assert first < {t.number for t in _create_study(cfg).get_trials()}


@pytest.mark.parametrize("patch, field, words", [
    ({"study": {"objectives": ["accuracy", "speed"]}}, "study.objectives", "distinct objectives"),
    ({"study": {"executor": "mpi"}}, "study.executor", "'ray', 'processes' or 'serial'"),
    ({"study": {"workers": 0}}, "study.workers", "positive integer"),
    ({"space": {"lr": {"low": 1e-2, "high": 1e-3}}}, "space.lr", "low <= high"),
    ({"space": {"dropout": {"low": 0.0, "high": 0.5}}}, "space.dropout", "unknown setting"),
    ({"space": {"hidden": {"choices": []}}}, "space.hidden", "non-empty list"),
    ({"task": {"dataset": "imagenet"}}, "task.dataset", "only 'digits'"),
    ({"extra": {}}, "extra", "unknown section"),
])
def test_bad_sweep_files_name_the_key(patch, field, words):
    with pytest.raises(InputError, match=words) as ei:
        parse_sweep_config(patch, "bad.toml")
    assert ei.value.field == field and ei.value.file == "bad.toml"


def test_cli_reports_a_missing_file_in_one_line(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such sweep file" in err[0]


def test_mlp_with_sca_sparsity_is_refused():
    from toolchain.sweep import run_trial
    task = {"dataset": "digits", "steps": 4, "train_samples": 32, "test_samples": 8, "epochs": 1, "batch_size": 32,
            "trainer": "bptt", "dt": 1e-3, "model": "mlp"}
    with pytest.raises(InputError, match="needs \\[task\\] model = 'cnn'"):
        run_trial({"sca_sparsity": 0.5}, task, "loihi2")
    with pytest.raises(InputError, match="'mlp' or 'cnn'"):
        parse_sweep_config({"task": {"model": "rnn"}})
    with pytest.raises(InputError, match="needs \\[task\\] model = 'cnn'") as ei:
        parse_sweep_config({"space": {"sca_sparsity": {"low": 0.0, "high": 0.5}}})
    assert ei.value.field == "space.sca_sparsity"
    assert parse_sweep_config({"task": {"model": "cnn"}, "space": {"sca_sparsity": {"low": 0.0, "high": 0.5}}})


@pytest.mark.slow
def test_cnn_trial_prunes_channels_with_sca():
    from toolchain.sweep import run_trial
    task = {"dataset": "digits", "steps": 4, "train_samples": 96, "test_samples": 16, "epochs": 1, "batch_size": 32,
            "trainer": "bptt", "dt": 1e-3, "model": "cnn"}
    dense = run_trial({"sca_sparsity": 0.0, "hidden": 8}, task, "loihi2")
    pruned = run_trial({"sca_sparsity": 0.5, "hidden": 8}, task, "loihi2")
    # half the channels of both conv layers go: the second conv keeps 1/4 of its synapses, the readout 1/2
    assert pruned["synapses"] < 0.6 * dense["synapses"]
    assert pruned["synapse_memory"] < dense["synapse_memory"]
