"""Multi-objective sweeps with Optuna: train, prune, compile and exit settings against accuracy on the compiled
integer network, cores, synaptic memory, energy, latency and mean steps with early exit.

A study is described by a TOML file (``snnc sweep CONFIG.toml``; :func:`load_sweep_config`)::

    [study]
    name = "digits"                          # the Optuna study name
    storage = "sqlite:///out/sweep/study.db" # any Optuna RDB URL: several workers and later runs share it
    trials = 8                               # trials in the study in all (resumed studies count earlier ones)
    workers = 2
    executor = "ray"                         # "ray" (local cluster, or ray_address), "processes" or "serial"
    ray_address = ""                         # "" starts a local Ray cluster; "auto" or "ray://host:10001" joins one
    sampler = "nsga2"                        # "nsga2" (NSGAIISampler) or "tpe" (multi-objective TPE)
    seed = 0
    objectives = ["accuracy", "cores", "energy"]
    target = "loihi2"
    out = "out/sweep"

    [task]                                   # the fixed part of every trial
    dataset = "digits"                       # scikit-learn's 8x8 digits, rate-coded (no download)
    steps = 8
    train_samples = 300
    test_samples = 100
    epochs = 2
    batch_size = 32
    trainer = "bptt"                         # or "stop" (STOP-WTL)
    model = "mlp"                            # or "cnn": 2 conv layers of `hidden` channels, SCA pruning

    [space]                                  # searched settings: {low, high[, log]} or {choices = [...]}
    lr = { low = 1e-3, high = 2e-2, log = true }
    hidden = { choices = [16, 32] }
    sparsity = { low = 0.0, high = 0.9 }     # magnitude pruning after training (share of weights removed)
    sca_sparsity = { low = 0.0, high = 0.75 } # model = "cnn": SCA channel pruning while training (share removed)
    vth_max = { choices = [1024, 16384] }    # compile: largest threshold mantissa
    reset = { choices = ["zero", "subtract"] }
    align = { choices = [true, false] }      # compile: align_bias
    cutoff_eps = { low = 0.0, high = 0.2 }   # early exit: Cutoff's epsilon (0: no early exit)

Every setting of ``[space]`` may instead be fixed in ``[task]``. One trial (:func:`run_trial`): build
``Linear(64, hidden) -> LIF(hidden) -> Linear(hidden, 10) -> LI(10)`` (``model = "mlp"``) and train it
(:func:`toolchain.train.train_bptt` or ``train_stop``), or (``model = "cnn"``) a 2-layer conv SNN
(:func:`toolchain.nn.conv_models.vgg_snn`, ``hidden`` channels per layer) trained with SCA channel pruning to
``sca_sparsity`` (:func:`toolchain.prune.sca.train_sca`, ramp over the first 70% of the steps, then
:func:`~toolchain.prune.sca.deploy`); zero the ``sparsity`` share of its smallest weights (:func:`toolchain.prune.magnitude.
prune_magnitude`), compile for the target (:func:`toolchain.compile.compile_graph` with ``vth_max``, ``reset``,
``align_bias``), run the test set on the reference integer simulator, calibrate a Cutoff policy with ``eps`` on
the first half of the test set and apply it to the second half (:mod:`toolchain.runtime.cutoff`). Objectives
(:data:`OBJECTIVES`): ``accuracy`` (integer network, with the early exit when ``cutoff_eps > 0``; maximised),
``cores``, ``synapse_memory`` (bits), ``energy`` (J per sample) and ``latency`` (s per sample) from
:func:`toolchain.runtime.metrics.energy_latency` (Loihi 1 figures where the target publishes none), and
``mean_steps`` (steps to exit; all minimised). Every trial's Program is saved under ``out/programs/trial_N``.

Workers: ``executor = "ray"`` runs ``workers`` Ray tasks (``num_cpus`` = workers on a local cluster) that each
load the study from the shared storage and run trials until the study holds ``trials`` finished trials
(Optuna's ``MaxTrialsCallback``; the other workers finish the trial they are in, so a study may end with up to
``workers - 1`` more); each worker's sampler has its own seed (``seed + 1000 * worker``) so that workers do not
propose the same settings; ``"processes"`` does the same with local processes; ``"serial"`` in this
process. A trial the compiler refuses (a :class:`~toolchain.errors.ToolchainError`) is marked failed with its
message in the trial's ``error`` attribute and the study goes on. With early exit, ``energy`` and ``latency``
are scaled by ``mean_steps / steps`` (the steps not run cost nothing; the estimate counts the run's operations
over all steps). Re-running the command resumes the study (its finished trials count). Output
(:func:`write_report`): the Pareto front as a table (also ``pareto.csv``), ``pareto.png`` (accuracy against the
first cost objective, the front marked) and the Pareto Programs copied to ``out/pareto/trial_N``.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import InputError, ToolchainError

try:  # Python 3.11+
    import tomllib as _toml  # type: ignore[import-not-found]
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

__all__ = ["SweepConfig", "load_sweep_config", "parse_sweep_config", "run_trial", "run_sweep", "pareto_rows",
           "write_report", "OBJECTIVES", "SPACE_KEYS"]

#: objective -> direction
OBJECTIVES = {"accuracy": "maximize", "cores": "minimize", "synapse_memory": "minimize", "energy": "minimize",
              "latency": "minimize", "mean_steps": "minimize"}
#: settings a trial takes (searched in [space] or fixed in [task]) and their defaults
SPACE_KEYS: Dict[str, Any] = {"lr": 5e-3, "hidden": 32, "sparsity": 0.0, "sca_sparsity": 0.0, "vth_max": 2 ** 14,
                              "reset": "subtract", "align": True, "cutoff_eps": 0.0}
_TASK_KEYS = {"dataset": "digits", "steps": 8, "train_samples": 300, "test_samples": 100, "epochs": 2,
              "batch_size": 32, "trainer": "bptt", "dt": 1e-3, "model": "mlp"}
_STUDY_KEYS = {"name": "sweep", "storage": "", "trials": 8, "workers": 2, "executor": "ray", "ray_address": "",
               "sampler": "nsga2", "seed": 0, "objectives": ["accuracy", "cores"], "target": "loihi2",
               "out": "out/sweep"}


@dataclass
class SweepConfig:
    """A parsed sweep file: ``study`` and ``task`` settings (defaults filled in) and the search ``space``
    (name -> ("float", low, high, log) | ("int", low, high, log) | ("choice", values))."""

    study: Dict[str, Any]
    task: Dict[str, Any]
    space: Dict[str, tuple]
    source: str = "<dict>"
    fixed: Dict[str, Any] = field(default_factory=dict)

    @property
    def objectives(self) -> List[str]:
        return list(self.study["objectives"])

    @property
    def out(self) -> Path:
        return Path(self.study["out"])

    @property
    def storage(self) -> str:
        return self.study["storage"] or f"sqlite:///{(self.out / 'study.db').as_posix()}"


def parse_sweep_config(data: Dict[str, Any], source: str = "<dict>") -> SweepConfig:
    """Check a sweep description (the TOML tables); errors name the file and the key."""
    for sec in data:
        if sec not in ("study", "task", "space"):
            raise InputError(f"unknown section [{sec}]; sections are [study], [task], [space]", file=source,
                             field=sec)
    study = dict(_STUDY_KEYS)
    for k, v in data.get("study", {}).items():
        if k not in _STUDY_KEYS:
            raise InputError(f"unknown key; [study] has {sorted(_STUDY_KEYS)}", file=source, field=f"study.{k}")
        study[k] = v
    objs = study["objectives"]
    if not isinstance(objs, list) or not objs or any(o not in OBJECTIVES for o in objs) or len(set(objs)) != len(objs):
        raise InputError(f"must be a list of distinct objectives from {sorted(OBJECTIVES)}, got {objs!r}",
                         file=source, field="study.objectives")
    for k in ("trials", "workers"):
        if isinstance(study[k], bool) or not isinstance(study[k], int) or study[k] < 1:
            raise InputError(f"must be a positive integer, got {study[k]!r}", file=source, field=f"study.{k}")
    if study["executor"] not in ("ray", "processes", "serial"):
        raise InputError(f"must be 'ray', 'processes' or 'serial', got {study['executor']!r}", file=source,
                         field="study.executor")
    if study["sampler"] not in ("nsga2", "tpe"):
        raise InputError(f"must be 'nsga2' or 'tpe', got {study['sampler']!r}", file=source, field="study.sampler")
    task = dict(_TASK_KEYS)
    fixed = dict(SPACE_KEYS)
    for k, v in data.get("task", {}).items():
        if k in _TASK_KEYS:
            task[k] = v
        elif k in SPACE_KEYS:
            fixed[k] = v
        else:
            raise InputError(f"unknown key; [task] has {sorted(set(_TASK_KEYS) | set(SPACE_KEYS))}", file=source,
                             field=f"task.{k}")
    if task["dataset"] != "digits":
        raise InputError(f"only 'digits' is built in, got {task['dataset']!r}", file=source, field="task.dataset")
    if task["trainer"] not in ("bptt", "stop"):
        raise InputError(f"must be 'bptt' or 'stop', got {task['trainer']!r}", file=source, field="task.trainer")
    if task["model"] not in ("mlp", "cnn"):
        raise InputError(f"must be 'mlp' or 'cnn', got {task['model']!r}", file=source, field="task.model")
    space: Dict[str, tuple] = {}
    for k, spec in data.get("space", {}).items():
        where = f"space.{k}"
        if k not in SPACE_KEYS:
            raise InputError(f"unknown setting; searchable: {sorted(SPACE_KEYS)}", file=source, field=where)
        if not isinstance(spec, dict):
            raise InputError("must be a table {low, high[, log]} or {choices = [...]}", file=source, field=where)
        if "choices" in spec:
            ch = spec["choices"]
            if set(spec) != {"choices"} or not isinstance(ch, list) or not ch:
                raise InputError("choices must be a non-empty list (and alone)", file=source, field=where)
            space[k] = ("choice", tuple(ch))
            continue
        if set(spec) - {"low", "high", "log"} or "low" not in spec or "high" not in spec:
            raise InputError("a range needs low and high (and optionally log)", file=source, field=where)
        lo, hi, log = spec["low"], spec["high"], bool(spec.get("log", False))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo <= hi or \
                (log and lo <= 0):
            raise InputError(f"need numbers low <= high (> 0 with log), got {lo!r}, {hi!r}", file=source,
                             field=where)
        kind = "int" if isinstance(lo, int) and isinstance(hi, int) and k in ("hidden", "vth_max") else "float"
        space[k] = (kind, lo, hi, log)
    if "sca_sparsity" in space and task["model"] != "cnn":
        raise InputError("sca_sparsity prunes conv channels: it needs [task] model = 'cnn'", file=source,
                         field="space.sca_sparsity")
    return SweepConfig(study, task, space, source, fixed)


def load_sweep_config(path: "str | os.PathLike") -> SweepConfig:
    """Read a sweep TOML file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such sweep file", file=str(p))
    try:
        data = _toml.loads(p.read_text())
    except _toml.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(p)) from None
    return parse_sweep_config(data, str(p))


# ------------------------------------------------------------------------------------------------- one trial
def _digits(task: Dict[str, Any]):
    from .data import load_digits_spikes
    ds = load_digits_spikes(steps=int(task["steps"]), flatten=task.get("model", "mlp") != "cnn")
    return ds.subset(int(task["train_samples"]) or None, int(task["test_samples"]) or None)


def run_trial(settings: Dict[str, Any], task: Dict[str, Any], target: str, seed: int = 0,
              program_dir: "Optional[str | os.PathLike]" = None) -> Dict[str, Any]:
    """Train, prune, compile and evaluate one setting (see the module docstring); returns every objective's value
    plus ``float_accuracy``, ``int_accuracy`` (no early exit) and ``synapses``. Saves the Program to
    ``program_dir`` when given."""
    if float(settings.get("sca_sparsity", 0.0)) > 0 and task.get("model", "mlp") != "cnn":
        raise InputError("sca_sparsity prunes conv channels: it needs [task] model = 'cnn'", field="sca_sparsity")
    import torch
    from torch import nn

    from .compile import compile_graph
    from .nn import LI, LIF, SpikingNet, to_graph
    from .prune.magnitude import prunable_weights, prune_magnitude
    from .runtime import cutoff
    from .runtime.metrics import energy_latency, workload_program
    from .sim.reference import simulate
    from .train import TrainConfig, evaluate, train_bptt, train_stop

    s = dict(SPACE_KEYS)
    s.update(settings)
    data = _digits(task)
    in_shape = tuple(int(v) for v in data.x_train.shape[2:])
    n_in = int(np.prod(in_shape))
    hidden = int(s["hidden"])
    cfg = TrainConfig(epochs=int(task["epochs"]), batch_size=int(task["batch_size"]), lr=float(s["lr"]), seed=seed,
                      progress=False)
    if task.get("model", "mlp") == "cnn":
        # conv SNN (hidden = channels of each of its 2 conv layers), SCA channel pruning while training
        from .nn.conv_models import vgg_snn
        from .prune import sca as S
        model = vgg_snn(in_shape=in_shape, channels=(hidden, hidden), pool_after=(1,), reset=str(s["reset"]),
                        batchnorm=task["trainer"] == "bptt", seed=seed)
        nb = -(-len(data.y_train) // int(task["batch_size"]))
        end = max(1, int(0.7 * int(task["epochs"]) * nb))
        sched = S.SCASchedule(target_sparsity=float(s["sca_sparsity"]), start=0, end=end,
                              interval=max(1, end // 4), regrow_fraction=0.3)
        S.train_sca(model, data, sched, cfg, trainer=task["trainer"],
                    **({"variant": "WTL"} if task["trainer"] == "stop" else {}))
        model = S.deploy(model).float()
    else:
        torch.manual_seed(seed)
        model = SpikingNet(nn.Linear(n_in, hidden),
                           LIF(hidden, alpha=0.9, threshold=1.0, reset=str(s["reset"]), learn_threshold=True,
                               learn_leak=True, per_neuron=False),
                           nn.Linear(hidden, data.n_classes), LI(data.n_classes, alpha=0.9, per_neuron=False))
        if task["trainer"] == "bptt":
            train_bptt(model, data, cfg)
        else:
            train_stop(model, data, cfg, variant="WTL")
    sparsity = float(s["sparsity"])
    if sparsity > 0:
        total = sum(int(w.numel()) for w in prunable_weights(model).values())
        prune_magnitude(model, max(1, int(round((1.0 - sparsity) * total))))
    float_acc = evaluate(model, data.x_test, data.y_test)
    from .prune.magnitude import sparse_graph
    graph = sparse_graph(to_graph(model, float(task["dt"]), in_shape if len(in_shape) > 1 else n_in))
    program = compile_graph(graph, target, reset=str(s["reset"]), vth_max=int(s["vth_max"]),
                            align_bias=bool(s["align"]))
    lat = int(program.metadata.get("output_latency_steps", 0))
    steps = int(task["steps"])
    x = data.x_test.astype(np.int64)
    res = simulate(program, x, steps=steps + lat, record=True)
    outputs = res.output[:, lat:lat + steps].astype(np.float64)  # the readout per step, aligned with the float one
    labels = np.asarray(data.y_test)
    int_acc = float((outputs.sum(1).argmax(-1) == labels).mean())
    eps = float(s["cutoff_eps"])
    half = len(labels) // 2
    if eps > 0 and half >= 2:
        policy = cutoff.calibrate(outputs[:half], labels[:half], eps=eps)
        k = cutoff.exit_steps(policy, outputs[half:])
        acc = float((cutoff.predictions_at_exit(outputs[half:], k) == labels[half:]).mean())
        mean_steps = float(k.mean())
    else:
        acc, mean_steps = int_acc, float(steps)
    work = workload_program(program, res, x)
    el = energy_latency(work, target, fallback="loihi1")
    rep = program.report
    if program_dir is not None:
        Path(program_dir).parent.mkdir(parents=True, exist_ok=True)
        program.save(program_dir)
    frac = mean_steps / steps  # early exit: the work and time of the steps not run are saved
    return {"accuracy": acc, "cores": float(rep["cores_used"]), "synapse_memory": float(rep["synapse_bits"]),
            "energy": float(el["energy_j"]) * frac if el.get("energy_j") is not None else float("nan"),
            "latency": float(el["latency_s"]) * frac if el.get("latency_s") is not None else float("nan"),
            "mean_steps": mean_steps, "float_accuracy": float(float_acc), "int_accuracy": int_acc,
            "synapses": float(program.synapse_count)}


# ------------------------------------------------------------------------------------------------- the study
def _sampler(cfg: SweepConfig, worker: int = 0):
    import optuna
    seed = int(cfg.study["seed"]) + 1000 * int(worker)  # workers must not propose the same settings
    if cfg.study["sampler"] == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, int(cfg.study["workers"]) * 2))


def _create_study(cfg: SweepConfig, worker: int = 0):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg.out.mkdir(parents=True, exist_ok=True)
    directions = [OBJECTIVES[o] for o in cfg.objectives]
    study = optuna.create_study(study_name=cfg.study["name"], storage=cfg.storage, directions=directions,
                                sampler=_sampler(cfg, worker), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        raise InputError(f"study '{cfg.study['name']}' in {cfg.storage} has other objectives; use another name",
                         file=cfg.source, field="study.objectives")
    return study


def _suggest(trial, cfg: SweepConfig) -> Dict[str, Any]:
    s = dict(cfg.fixed)
    for k, spec in cfg.space.items():
        if spec[0] == "choice":
            s[k] = trial.suggest_categorical(k, list(spec[1]))
        elif spec[0] == "int":
            s[k] = trial.suggest_int(k, spec[1], spec[2], log=spec[3])
        else:
            s[k] = trial.suggest_float(k, float(spec[1]), float(spec[2]), log=spec[3])
    return s


def _objective(cfg: SweepConfig):
    def objective(trial) -> Tuple[float, ...]:
        s = _suggest(trial, cfg)
        pdir = cfg.out / "programs" / f"trial_{trial.number}"
        t0 = time.perf_counter()
        try:
            m = run_trial(s, cfg.task, cfg.study["target"], seed=int(cfg.study["seed"]), program_dir=pdir)
        except ToolchainError as exc:  # a setting the compiler refuses: the trial fails, the study goes on
            trial.set_user_attr("error", str(exc))
            raise
        for k, v in m.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("settings", {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                                         for k, v in s.items()})
        trial.set_user_attr("program", str(pdir))
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        trial.set_user_attr("worker_pid", os.getpid())
        return tuple(float(m[o]) for o in cfg.objectives)
    return objective


def _finished(study) -> int:
    import optuna
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _work(cfg: SweepConfig, worker: int = 0) -> int:
    """One worker: run trials of the shared study until it holds ``trials`` finished ones; returns trials run."""
    import optuna
    from optuna.study import MaxTrialsCallback
    import torch
    torch.set_num_threads(1)
    study = _create_study(cfg, worker)
    before = os.getpid()
    total = int(cfg.study["trials"])
    if _finished(study) >= total:
        return 0
    study.optimize(_objective(cfg), n_trials=total,
                   callbacks=[MaxTrialsCallback(total, states=(optuna.trial.TrialState.COMPLETE,))],
                   catch=(ToolchainError,))
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker_pid") == before)


def _process_worker(cfg_data: Tuple[Dict[str, Any], str], worker: int, q) -> None:
    try:
        cfg = parse_sweep_config(*cfg_data)
        q.put(("ok", _work(cfg, worker)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def _raw(cfg: SweepConfig) -> Dict[str, Any]:
    space = {}
    for k, spec in cfg.space.items():
        if spec[0] == "choice":
            space[k] = {"choices": list(spec[1])}
        else:
            space[k] = {"low": spec[1], "high": spec[2], "log": spec[3]}
    task = dict(cfg.task)
    task.update({k: v for k, v in cfg.fixed.items() if k not in cfg.space})
    return {"study": dict(cfg.study), "task": task, "space": space}


def run_sweep(cfg: SweepConfig, log=print) -> Dict[str, Any]:
    """Run (or resume) the study with the configured executor; returns :func:`pareto_rows`'s result plus the
    study's trial counts and seconds."""
    t0 = time.perf_counter()
    study = _create_study(cfg)  # creates the storage once, before the workers race for it
    workers = int(cfg.study["workers"])
    ex = cfg.study["executor"]
    if ex == "serial" or workers == 1:
        ran = [_work(cfg)]
    elif ex == "processes":
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=_process_worker, args=((_raw(cfg), cfg.source), w, q)) for w in range(workers)]
        for p in procs:
            p.start()
        res = [q.get() for _ in procs]
        for p in procs:
            p.join()
        errs = [m for k, m in res if k == "error"]
        if errs:
            raise ToolchainError(f"a sweep worker failed: {errs[0]}", file=cfg.source)
        ran = [m for _, m in res]
    else:
        import ray
        addr = cfg.study["ray_address"] or None
        started = False
        if not ray.is_initialized():
            if addr:
                ray.init(address=addr, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}})
            started = True
        try:
            remote = ray.remote(num_cpus=1)(_ray_worker)
            ran = ray.get([remote.remote(_raw(cfg), cfg.source, w) for w in range(workers)])
        finally:
            if started:
                ray.shutdown()
    study = _create_study(cfg)
    out = pareto_rows(study, cfg)
    out.update({"trials_run": ran, "trials": _finished(study), "seconds": time.perf_counter() - t0})
    log(f"{out['trials']} finished trials in the study ({sum(ran)} run now by {len(ran)} worker(s): {ran})")
    return out


def _ray_worker(cfg_data: Dict[str, Any], source: str, worker: int) -> int:
    return _work(parse_sweep_config(cfg_data, source), worker)


# ------------------------------------------------------------------------------------------------- output
def pareto_rows(study, cfg: SweepConfig) -> Dict[str, Any]:
    """The study's Pareto front: ``rows`` (one dict per Pareto trial: number, objectives, settings, program),
    sorted by the first objective."""
    best = study.best_trials
    rows = []
    for t in best:
        r = {"trial": t.number}
        r.update({o: float(v) for o, v in zip(cfg.objectives, t.values)})
        r.update({k: t.user_attrs.get(k) for k in ("float_accuracy", "int_accuracy", "mean_steps", "program")
                  if k not in r})
        r["settings"] = t.user_attrs.get("settings", dict(t.params))
        rows.append(r)
    first = cfg.objectives[0]
    rows.sort(key=lambda r: r[first], reverse=OBJECTIVES[first] == "maximize")
    return {"rows": rows, "objectives": cfg.objectives}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(study, cfg: SweepConfig, front: Dict[str, Any]) -> List[str]:
    """Write ``pareto.csv``, ``pareto.json``, ``pareto.png`` and copy the Pareto Programs to ``out/pareto``;
    returns the front as table lines. The plot has one panel per objective after the first: the first objective
    against it, every finished trial in grey and the Pareto trials (over all objectives) in red."""
    import optuna

    from .plotting import save_figure
    from .textutil import table_lines
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    objs = cfg.objectives
    keys = sorted({k for r in front["rows"] for k in r["settings"]})
    header = ["trial"] + objs + keys
    table = [header] + [[_fmt(r["trial"])] + [_fmt(r[o]) for o in objs] + [_fmt(r["settings"].get(k)) for k in keys]
                        for r in front["rows"]]
    with open(out / "pareto.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(table)
    (out / "pareto.json").write_text(json.dumps(front, indent=2, default=str))
    pdir = out / "pareto"
    if pdir.exists():
        shutil.rmtree(pdir)
    for r in front["rows"]:
        src = Path(r.get("program") or "")
        if src.exists():
            shutil.copytree(src, pdir / src.name)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    costs = objs[1:] or ["trial"]
    fig, axes = plt.subplots(1, len(costs), figsize=(4.2 * len(costs), 3.8), squeeze=False)
    on_front = {r["trial"] for r in front["rows"]}

    def val(t, o):
        return t.number if o == "trial" else t.values[objs.index(o)]
    for ax, xo in zip(axes[0], costs):  # the first objective against each other one; the front in red
        rest = [t for t in done if t.number not in on_front]
        best = [t for t in done if t.number in on_front]
        ax.scatter([val(t, xo) for t in rest], [t.values[0] for t in rest], c="0.6", s=18, label="trials")
        ax.scatter([val(t, xo) for t in best], [t.values[0] for t in best], c="r", s=30, label="Pareto front")
        ax.set_xlabel(xo)
        ax.set_ylabel(objs[0])
        if xo in ("energy", "latency", "synapse_memory"):
            ax.set_xscale("log")
    axes[0][0].legend()
    fig.suptitle(f"study '{cfg.study['name']}': {len(done)} trials, {len(front['rows'])} on the front")
    save_figure(fig, out / "pareto.png")
    return table_lines(table)

