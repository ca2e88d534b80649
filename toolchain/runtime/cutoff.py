"""Cutoff: per-sample early exit at inference (Wu et al., arXiv 2301.09522; METHODS.md "Cutoff").

The network's output is accumulated over time, ``Y(t) = sum_{tau <= t} out(tau)`` (spike counts for a spiking
readout, summed membrane values for a non-spiking one), and the prediction at step ``t`` is ``argmax Y(t)``.
A sample leaves the batch at the first step whose *confidence score* exceeds that step's threshold ``beta_t``,
and always at the last step ``T``:

* ``"topk"`` (the method): score = top1(Y(t)) - top2(Y(t)), the gap between the two largest classes.
* ``"softmax"`` (baseline): score = max softmax(Y(t) / temperature), the confidence exit. **(ours)** The
  softmax is taken of the accumulated output ``Y(t)`` itself (not of ``Y(t)/t``; per-step thresholds absorb
  the growth over time). ``temperature`` is 1 for spiking outputs (spike counts are the logits the "sum" loss
  trains) and, for non-spiking readouts (integer ``v`` of arbitrary scale), the mean over calibration samples
  of the standard deviation of ``Y(T)`` across classes, so that the logits have unit spread.
* ``"fixed"`` (baseline): never exits before ``T``.

Calibration (:func:`calibrate`), one threshold per step from training outputs: on a grid of ``grid`` values from
0 to the largest score at that step, ``beta_t`` is the smallest value whose exiting samples (score > beta) are
*stably correct* (correct at ``t`` and at every later step) in at least ``1 - eps`` of the cases. **(ours)** The
grid's top is the largest score *at that step*; when no grid value leaves a non-empty exiting set that meets
the bound, ``beta_t = +inf`` (nobody exits at that step). Optional, **ours**: ``confidence_level`` replaces
the share by its Clopper-Pearson lower bound (thresholds need support), and :func:`select_eps` picks ``eps`` on
held-out data by 5-fold cross-fitting under an accuracy-drop bound. Also **ours**, off by default: ``target="final"``
counts an exit as right when its prediction equals the one at ``T`` (the exit cannot change the result; labels
unused; a sample wrong anyway may leave once settled), ``sequential=True`` calibrates step t on the samples the
earlier thresholds keep running, and :func:`select_rule` picks the rule together with ``eps`` on held-out data.

Window-margin score and pooled thresholds (**ours**, off by default; ``window``, ``pooled`` of :func:`calibrate`):
the gap of ``Y(t)`` mixes evidence from the whole run, so where the evidence arrives late (a class burst after
noise, ``toolchain.data.onset``) noise accumulated before it already has gaps and the per-step thresholds must be
high. The window margin scores only the last W steps: the margin of the current prediction ``argmax Y(t)`` in
``Y(t) - Y(t-W)`` (:func:`window_margin`), stationary before the evidence arrives. With ``pooled``, one threshold
serves every step and is calibrated on each sample's first exit (so all calibration samples support it, where a
per-step threshold under a Clopper-Pearson bound needs hundreds of exits at its own step). At run time the
policy is still a per-step threshold on a score of the readout up to step t; a window policy needs the
accumulated readout of the last W steps of every running sample (a W x C integer history; :meth:`CutoffPolicy.hook`
keeps it and drops the rows of finished samples). The score is a difference of integer sums, exact in float64
while ``|Y|`` stays below 2**53.

Conventions: steps are counted from 1: a sample with ``exit_step == k`` consumed steps ``1..k`` (array indices
``0..k-1``) and is predicted from ``Y(k)``. Online hooks receive the 0-based index of the step just simulated.

Online use (work really stops at the exit step):

* :meth:`CutoffPolicy.hook` -> the ``early_exit(t, accumulated_output) -> bool mask`` callable of
  :func:`toolchain.sim.reference.simulate`.
* :func:`run_with_cutoff` — PyTorch, through ``SpikingNet.step``; finished samples are dropped from the batch
  and from every state tensor.
* :func:`run_lava_with_cutoff` — Lava, one sample at a time, ``RunSteps(1)`` per step, stopping at the exit.

OCT (:func:`oracle_exit_steps`): the earliest step after which the prediction stays correct; a sample that is
wrong at ``T`` runs to ``T`` (**ours**; no exit can make it right). Storage: :func:`attach_policy` puts the
policy (JSON-safe) in ``program.metadata["cutoff"]``, saved with the Program; ``snnc calibrate BUILD/`` does
this, and :func:`load_policy` reads it back from a build directory or a JSON file (:meth:`CutoffPolicy.save`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError, ToolchainError
from ..plotting import save_figure

__all__ = [
    "KINDS", "TARGETS", "CutoffPolicy", "exit_right", "accumulate", "topk_gap", "softmax_confidence", "confidence",
    "predictions", "correct_matrix", "stably_correct", "calibrate", "fixed_policy", "exit_steps", "predictions_at_exit",
    "oracle_exit_steps", "evaluate", "accuracy_per_step", "attach_policy", "policy_from_program", "load_policy",
    "tradeoff_curves", "plot_tradeoff", "DEFAULT_EPS_SWEEP", "select_eps", "DEFAULT_RULES", "select_rule",
    "clopper_pearson_lower", "window_margin", "score_series", "WINDOW_RULES",
    "run_with_cutoff", "run_lava_with_cutoff", "simulate_with_cutoff",
]

KINDS = ("topk", "softmax", "fixed")
#: what makes an exit at step t right during calibration: "stable" (published): correct at t and at every later
#: step; "final" (ours): the prediction at t equals the prediction at the last calibrated step (labels unused)
TARGETS = ("stable", "final")
_FORMAT = "snnc-cutoff-policy/1"


# ----------------------------------------------------------------------------------------------------------
# Pure functions over output arrays
# ----------------------------------------------------------------------------------------------------------

def _check_outputs(outputs: Any, name: str = "outputs") -> np.ndarray:
    out = np.asarray(outputs)
    if out.ndim != 3:
        raise InputError(f"must have shape (N, T, C), got {out.shape}", field=name)
    if out.shape[1] < 1 or out.shape[2] < 2:
        raise InputError(f"needs at least one step and two classes, got shape {out.shape}", field=name)
    if not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise InputError(f"must be real numbers, got dtype {out.dtype}", field=name)
    return out


def _check_labels(labels: Any, n: int, n_classes: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise InputError(f"must have shape ({n},), got {lab.shape}", field="labels")
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.equal(np.mod(lab, 1), 0)):
            raise InputError("must hold integer class indices", field="labels")
    lab = lab.astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise InputError(f"class indices [{lab.min()}, {lab.max()}] outside [0, {n_classes})", field="labels")
    return lab


def accumulate(outputs: Any) -> np.ndarray:
    """``Y(t) = sum_{tau <= t} out(tau)`` along axis 1 of ``(N, T, C)`` outputs (float64 result)."""
    out = _check_outputs(outputs)
    return np.cumsum(out.astype(np.float64), axis=1)


def topk_gap(acc: Any) -> np.ndarray:
    """Top-1 minus top-2 of the last axis of accumulated outputs ``(..., C)`` -> ``(...)``; 0 on a tie."""
    a = np.asarray(acc, dtype=np.float64)
    if a.shape[-1] < 2:
        raise InputError(f"needs at least two classes, got {a.shape[-1]}", field="accumulated_output")
    top2 = np.partition(a, a.shape[-1] - 2, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def window_margin(acc: Any, acc_back: Any) -> np.ndarray:
    """**(ours)** The margin of the current prediction in the recent evidence: with ``p = argmax Y(t)`` (first class
    on a tie) and ``D = Y(t) - Y(t-W)`` (``acc`` and ``acc_back``, both ``(..., C)``), ``D_p - max_{c != p} D_c``.
    Negative when the last W steps favour another class. With ``acc_back = 0`` (a window reaching back to the
    start) it equals :func:`topk_gap` of ``Y(t)``."""
    a = np.asarray(acc, dtype=np.float64)
    d = a - np.asarray(acc_back, dtype=np.float64)
    if a.shape[-1] < 2 or d.shape != a.shape:
        raise InputError(f"needs matching (..., C>=2) shapes, got {a.shape} and {d.shape}",
                         field="accumulated_output")
    p = np.argmax(a, axis=-1)[..., None]
    dp = np.take_along_axis(d, p, axis=-1)[..., 0]
    rest = d.copy()
    np.put_along_axis(rest, p, -np.inf, axis=-1)
    return dp - rest.max(axis=-1)


def softmax_confidence(acc: Any, temperature: float = 1.0) -> np.ndarray:
    """``max_c softmax(Y / temperature)_c`` over the last axis of accumulated outputs ``(..., C)`` -> ``(...)``,
    in (1/C, 1]."""
    a = np.asarray(acc, dtype=np.float64) / float(temperature)
    z = a - a.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return 1.0 / e.sum(axis=-1)  # the largest entry has exp(0) = 1


def confidence(acc: Any, kind: str, temperature: float = 1.0) -> np.ndarray:
    """The exit score of ``kind`` ("topk" gap or "softmax" confidence) of accumulated outputs ``(..., C)``."""
    if kind == "topk":
        return topk_gap(acc)
    if kind == "softmax":
        return softmax_confidence(acc, temperature)
    if kind == "fixed":
        return np.zeros(np.asarray(acc).shape[:-1])
    raise InputError(f"unknown cutoff kind {kind!r}; expected one of {KINDS}", field="kind")


def score_series(acc: np.ndarray, kind: str, temperature: float = 1.0, window: int = 0) -> np.ndarray:
    """The exit score at every step of accumulated outputs ``(N, T, C)`` -> ``(N, T)``: :func:`confidence` of
    ``Y(t)``, or with ``window`` W > 0 (kind "topk" only) :func:`window_margin` of ``Y(t)`` against ``Y(t-W)``
    (``Y(t-W) = 0`` for ``t <= W``)."""
    if window <= 0:
        return confidence(acc, kind, temperature)
    if kind != "topk":
        raise InputError(f"a window applies to kind 'topk' only, got {kind!r}", field="window")
    back = np.zeros_like(acc)
    back[:, window:] = acc[:, :-window]
    return window_margin(acc, back)


def predictions(outputs: Any) -> np.ndarray:
    """``argmax Y(t)`` for every sample and step: ``(N, T)`` int64 (first class wins a tie)."""
    return np.argmax(accumulate(outputs), axis=-1)


def correct_matrix(outputs: Any, labels: Any) -> np.ndarray:
    """``(N, T)`` bool: the prediction at step t is the label."""
    out = _check_outputs(outputs)
    lab = _check_labels(labels, out.shape[0], out.shape[2])
    return predictions(out) == lab[:, None]


def stably_correct(correct: np.ndarray) -> np.ndarray:
    """``(N, T)`` bool: correct at step t and at every later step."""
    c = np.asarray(correct, dtype=bool)
    return np.flip(np.logical_and.accumulate(np.flip(c, axis=1), axis=1), axis=1)


def accuracy_per_step(outputs: Any, labels: Any) -> np.ndarray:
    """Accuracy of ``argmax Y(t)`` at every step t = 1..T (the fixed-T curve), shape ``(T,)``."""
    return correct_matrix(outputs, labels).mean(axis=0)


def clopper_pearson_lower(k: Any, n: Any, level: float) -> np.ndarray:
    """One-sided lower confidence bound at ``level`` (e.g. 0.9) of a binomial proportion with ``k`` successes in
    ``n`` trials (Clopper-Pearson, exact): the ``1 - level`` quantile of Beta(k, n - k + 1); 0 where k = 0."""
    from scipy.stats import beta as _beta

    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lb = _beta.ppf(1.0 - float(level), np.maximum(k, 1.0), np.maximum(n - k + 1.0, 1.0))
    return np.where(k > 0, lb, 0.0)


def _thresholds_for(scores: np.ndarray, stable: np.ndarray, eps: float, grid: int,
                    confidence_level: Optional[float] = None, sequential: bool = False) -> np.ndarray:
    """Per-step smallest grid value whose exiting set (score > beta) is right (``stable``: (N, T) bool, an exit at
    step t is right) in >= 1 - eps (or, with ``confidence_level``, whose Clopper-Pearson lower bound of that share
    is >= 1 - eps). ``sequential``: the set at step t holds only the samples the thresholds of steps < t have not
    already let out."""
    n, steps = scores.shape
    betas = np.full(steps, np.inf)
    alive = np.ones(n, dtype=bool)
    for t in range(steps):
        if t > 0 and sequential and np.isfinite(betas[t - 1]):
            alive &= ~(scores[:, t - 1] > betas[t - 1])
        g = scores[alive, t] if sequential else scores[:, t]
        right = stable[alive, t] if sequential else stable[:, t]
        top = float(g.max()) if g.size else 0.0
        if not np.isfinite(top) or top <= 0.0:
            continue
        cand = np.linspace(0.0, top, grid)
        above = g[None, :] > cand[:, None]                       # (grid, N)
        n_exit = above.sum(axis=1)
        n_ok = (above & right[None, :]).sum(axis=1)
        if confidence_level is None:
            ok = (n_exit > 0) & (n_ok >= (1.0 - eps) * n_exit - 1e-9)
        else:
            ok = (n_exit > 0) & (clopper_pearson_lower(n_ok, n_exit, confidence_level) >= 1.0 - eps - 1e-12)
        hits = np.flatnonzero(ok)
        if hits.size:
            betas[t] = cand[hits[0]]
    return betas


def _pooled_thresholds(scores: np.ndarray, right: np.ndarray, eps: float, grid: int,
                       confidence_level: Optional[float] = None) -> np.ndarray:
    """**(ours)** One threshold shared by steps 1..T-1 (the last entry inf; every sample leaves at T): the smallest
    candidate beta whose exits (each sample's first step t < T with score > beta) are right (``right[i, t]``) in
    >= 1 - eps of the samples that exit before T (or, with ``confidence_level``, whose Clopper-Pearson lower bound
    of that share is). Candidates: ``grid`` quantiles (0..1) of the positive scores of steps 1..T-1. Every sample
    supports the one threshold, where a per-step threshold sees only the exits of its step."""
    n, steps = scores.shape
    betas = np.full(steps, np.inf)
    s = scores[:, :steps - 1]
    pos = s[np.isfinite(s) & (s > 0)]
    if steps < 2 or pos.size == 0:
        return betas
    cand = np.unique(np.concatenate([[0.0], np.quantile(pos, np.linspace(0.0, 1.0, grid))]))
    rows = np.arange(n)
    for b in cand:
        fire = s > b
        leaves = fire.any(axis=1)
        n_exit = int(leaves.sum())
        if n_exit == 0:
            break  # larger candidates let nobody out either
        n_ok = int(right[rows, np.argmax(fire, axis=1)][leaves].sum())
        if confidence_level is None:
            ok = n_ok >= (1.0 - eps) * n_exit - 1e-9
        else:
            ok = float(clopper_pearson_lower(n_ok, n_exit, confidence_level)) >= 1.0 - eps - 1e-12
        if ok:
            betas[:steps - 1] = b
            break
    return betas


@dataclass
class CutoffPolicy:
    """Per-step exit thresholds for one confidence score.

    ``thresholds``: float64 ``(T,)``, ``thresholds[t-1] = beta_t`` for step t (``inf``: never exit at that step;
    the last entry is never consulted since every sample exits at T). ``kind``: "topk", "softmax" or "fixed".
    ``eps``: the tolerated share of exits that are not stably correct on the calibration data; ``grid``: the
    number of grid values; ``temperature``: the softmax temperature (kind "softmax" only);
    ``confidence_level``: the calibration's Clopper-Pearson level, or None (see :func:`calibrate`);
    ``calibration``: figures measured on the calibration set (samples, accuracy at T, accuracy and mean steps
    with this policy). ``target``, ``sequential``: the calibration rule (:func:`calibrate`). **(ours)**
    ``window`` W (kind "topk"; 0 = the published score): the score is :func:`window_margin` of ``Y(t)`` against
    ``Y(t-W)``, so the runtime keeps the accumulated readout of the last W steps of every running sample (a W x C
    history; :meth:`hook` does this); ``pooled``: the thresholds were calibrated as one value shared by all steps
    (:func:`calibrate`); the runtime still reads one threshold per step.
    """

    thresholds: np.ndarray
    kind: str = "topk"
    eps: float = 0.0
    grid: int = 100
    calibration: Dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    confidence_level: Optional[float] = None
    target: str = "stable"
    sequential: bool = False
    window: int = 0
    pooled: bool = False

    def __post_init__(self) -> None:
        th = np.asarray(self.thresholds, dtype=np.float64).reshape(-1)
        if th.size < 1:
            raise InputError("needs at least one step", field="thresholds")
        if np.any(np.isnan(th)):
            raise InputError("must not contain NaN", field="thresholds")
        if self.kind not in KINDS:
            raise InputError(f"unknown cutoff kind {self.kind!r}; expected one of {KINDS}", field="kind")
        if not 0.0 <= float(self.eps) < 1.0:
            raise InputError(f"must be in [0, 1), got {self.eps}", field="eps")
        self.thresholds = th
        self.eps = float(self.eps)
        self.grid = int(self.grid)
        self.temperature = float(self.temperature)
        if self.confidence_level is not None:
            self.confidence_level = float(self.confidence_level)
        if self.target not in TARGETS:
            raise InputError(f"unknown calibration target {self.target!r}; expected one of {TARGETS}", field="target")
        self.sequential = bool(self.sequential)
        self.pooled = bool(self.pooled)
        if int(self.window) != self.window or int(self.window) < 0:
            raise InputError(f"must be a non-negative integer, got {self.window}", field="window")
        self.window = int(self.window)
        if self.window and self.kind != "topk":
            raise InputError(f"a window applies to kind 'topk' only, got kind {self.kind!r}", field="window")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise InputError(f"must be a positive number, got {self.temperature}", field="temperature")

    @property
    def steps(self) -> int:
        """The time budget T the policy was calibrated for."""
        return int(self.thresholds.size)

    def score(self, acc: Any, acc_back: Any = None) -> np.ndarray:
        """This policy's confidence score of accumulated outputs ``(..., C)``; with a ``window``, ``acc_back`` is
        ``Y(t-W)`` (zeros for ``t < W``)."""
        if self.window:
            if acc_back is None:
                raise InputError(f"a window-{self.window} policy needs Y(t-{self.window}); run it through hook()",
                                 field="acc_back")
            return window_margin(acc, acc_back)
        return confidence(acc, self.kind, self.temperature)

    def should_exit(self, t: int, acc: Any, acc_back: Any = None) -> np.ndarray:
        """Bool mask ``(B,)``: which samples leave after the 0-based step ``t`` given ``Y`` of shape ``(B, C)``
        (and, for a ``window`` policy, ``Y(t-W)`` as ``acc_back``, same shape).

        Every sample leaves at the last calibrated step (``t >= T - 1``)."""
        a = np.asarray(acc, dtype=np.float64)
        if a.ndim != 2:
            raise InputError(f"must have shape (B, C), got {a.shape}", field="accumulated_output")
        if t >= self.steps - 1:
            return np.ones(a.shape[0], dtype=bool)
        if self.kind == "fixed" or not np.isfinite(self.thresholds[t]):
            return np.zeros(a.shape[0], dtype=bool)
        return self.score(a, acc_back) > self.thresholds[t]

    def hook(self) -> Callable[[int, Any], np.ndarray]:
        """The ``early_exit(t, accumulated_output) -> bool mask`` callable of one run (reference simulator, torch
        backend, :func:`run_with_cutoff`; one per sample in :func:`run_lava_with_cutoff`).

        Without a window it is :meth:`should_exit` (stateless). With a window W it keeps the last W accumulated
        outputs of the running samples (rows in the order the caller passes them); it starts afresh at ``t == 0``
        and drops the rows it tells to leave, as the callers do (a finished sample leaves the batch)."""
        if not self.window:
            return self.should_exit
        w = self.window
        hist: List[np.ndarray] = []  # Y(t-1), ..., Y(t-W) of the running samples, oldest first

        def early_exit(t: int, acc: Any) -> np.ndarray:
            a = np.array(acc, dtype=np.float64)
            if t == 0:
                hist.clear()
            if a.ndim != 2 or (hist and hist[0].shape != a.shape):
                raise InputError(f"got shape {a.shape} at step {t}, expected "
                                 f"{hist[0].shape if hist else '(B, C)'} (the samples still running)",
                                 field="accumulated_output")
            back = hist[0] if len(hist) == w else np.zeros_like(a)
            stop = np.asarray(self.should_exit(t, a, back), dtype=bool)
            hist.append(a)
            if len(hist) > w:
                hist.pop(0)
            if stop.any():
                hist[:] = [h[~stop] for h in hist]
            return stop

        return early_exit

    # -- persistence ------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """JSON-safe dict (``inf`` thresholds are written as null)."""
        return {
            "format": _FORMAT, "kind": self.kind, "eps": self.eps, "grid": self.grid,
            "temperature": self.temperature, "confidence_level": self.confidence_level,
            "target": self.target, "sequential": self.sequential, "window": self.window, "pooled": self.pooled,
            "thresholds": [None if not np.isfinite(b) else float(b) for b in self.thresholds],
            "calibration": _json_safe(self.calibration),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any], *, file: Optional[str] = None) -> "CutoffPolicy":
        """Inverse of :meth:`to_dict`; raises :class:`ToolchainError` naming the file and field on bad input."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ToolchainError(f"not a cutoff policy (expected format {_FORMAT!r})", file=file, field="format")
        try:
            th = [np.inf if b is None else float(b) for b in d["thresholds"]]
            return cls(np.asarray(th), kind=str(d.get("kind", "topk")), eps=float(d.get("eps", 0.0)),
                       grid=int(d.get("grid", 100)), calibration=dict(d.get("calibration", {})),
                       temperature=float(d.get("temperature", 1.0)),
                       confidence_level=d.get("confidence_level"), target=str(d.get("target", "stable")),
                       sequential=bool(d.get("sequential", False)), window=int(d.get("window", 0)),
                       pooled=bool(d.get("pooled", False)))
        except KeyError as exc:
            raise ToolchainError("missing field", file=file, field=str(exc.args[0])) from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ToolchainError):
                raise ToolchainError(exc.message, file=file, field=exc.field) from exc
            raise ToolchainError(f"bad value: {exc}", file=file, field="thresholds") from exc

    def save(self, path: Union[str, Path]) -> Path:
        """Write the policy as JSON (written to a temporary file first, then renamed: no partial files)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "CutoffPolicy":
        """Read a policy written by :meth:`save`."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ToolchainError(f"not valid JSON: {exc.msg} at line {exc.lineno}", file=str(path)) from exc
        return cls.from_dict(d, file=str(path))


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def exit_right(outputs: Any, labels: Any, target: str = "stable") -> np.ndarray:
    """``(N, T)`` bool: an exit at step t is right for calibration target ``target`` (see :data:`TARGETS`).

    ``"stable"``: correct at t and at every later step (the published rule). ``"final"`` (**ours**): the prediction
    at t equals the prediction at the last step T, so the exit cannot change the result of running to T; the labels
    are not used (checked only for shape). The accuracy lost by exits calibrated this way is at most the share of
    exits whose prediction differs from the one at T, which is what ``eps`` bounds; a sample that is wrong at T
    may leave as soon as its (wrong) prediction has settled, which matters where accuracy is far from 100%."""
    out = _check_outputs(outputs)
    if target == "stable":
        return stably_correct(correct_matrix(out, labels))
    if target == "final":
        _check_labels(labels, out.shape[0], out.shape[2])
        pred = predictions(out)
        return pred == pred[:, -1:]
    raise InputError(f"unknown calibration target {target!r}; expected one of {TARGETS}", field="target")


def calibrate(outputs: Any, labels: Any, eps: float = 0.01, grid: int = 100, kind: str = "topk",
              temperature: Optional[float] = None, confidence_level: Optional[float] = None,
              target: str = "stable", sequential: bool = False, window: int = 0,
              pooled: bool = False) -> CutoffPolicy:
    """Calibrate one exit threshold per step from outputs ``(N, T, C)`` (per-step, not accumulated) and labels.

    See the module docstring for the rule. ``kind="fixed"`` gives the fixed-T baseline (all thresholds inf).
    ``temperature`` (softmax only): None picks it as the module docstring says (1 for 0/1 spike outputs).
    ``confidence_level`` (**ours**, default None = the rule as published): require the one-sided
    Clopper-Pearson lower bound (at this level, e.g. 0.9) of the stably-correct share of the exiting samples,
    rather than the share itself, to reach ``1 - eps``. A threshold then needs support: a handful of exiting
    samples that happen to be right on the calibration set no longer suffices, which matters at the first steps
    with output and on small calibration sets; ``eps`` must then be > 0 for anyone to exit.
    ``target`` (**ours**, default "stable" = published): what counts as a right exit, see :func:`exit_right`.
    ``sequential`` (**ours**, default False = published): calibrate step t on the samples still running at t (those
    the thresholds of earlier steps keep), the population that threshold meets at inference, rather than on all.
    ``window`` (**ours**, default 0 = published; kind "topk"): score each step by :func:`window_margin` over the
    last ``window`` steps (the evidence that arrived recently) instead of the gap of ``Y(t)``.
    ``pooled`` (**ours**, default False): one threshold for all steps (:func:`_pooled_thresholds`: the samples'
    first exits pooled, so the threshold is supported by every sample, not by one step's exits); ``sequential``
    is then implied (each sample counts once, at its first exit).
    """
    out = _check_outputs(outputs)
    lab = _check_labels(labels, out.shape[0], out.shape[2])
    if kind not in KINDS:
        raise InputError(f"unknown cutoff kind {kind!r}; expected one of {KINDS}", field="kind")
    if not 0.0 <= float(eps) < 1.0:
        raise InputError(f"must be in [0, 1), got {eps}", field="eps")
    if int(grid) < 2:
        raise InputError(f"must be at least 2, got {grid}", field="grid")
    if confidence_level is not None and not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"must be in (0, 1), got {confidence_level}", field="confidence_level")
    if target not in TARGETS:
        raise InputError(f"unknown calibration target {target!r}; expected one of {TARGETS}", field="target")
    acc = accumulate(out)
    correct = np.argmax(acc, axis=-1) == lab[:, None]
    if temperature is not None:
        temperature = float(temperature)
    elif kind != "softmax" or np.all((out == 0) | (out == 1)):
        temperature = 1.0
    else:
        spread = float(acc[:, -1].std(axis=-1).mean())
        temperature = spread if spread > 0 and math.isfinite(spread) else 1.0
    if int(window) != window or window < 0:
        raise InputError(f"must be a non-negative integer, got {window}", field="window")
    if window and kind != "topk":
        raise InputError(f"a window applies to kind 'topk' only, got kind {kind!r}", field="window")
    if kind == "fixed":
        betas = np.full(out.shape[1], np.inf)
    elif pooled:
        betas = _pooled_thresholds(score_series(acc, kind, temperature, int(window)), exit_right(out, lab, target),
                                   float(eps), int(grid), confidence_level)
    else:
        betas = _thresholds_for(score_series(acc, kind, temperature, int(window)), exit_right(out, lab, target),
                                float(eps), int(grid), confidence_level, sequential=bool(sequential))
    policy = CutoffPolicy(betas, kind=kind, eps=float(eps), grid=int(grid), temperature=temperature,
                          confidence_level=confidence_level, target=target, sequential=bool(sequential),
                          window=int(window), pooled=bool(pooled))
    res = evaluate(policy, out, lab)
    policy.calibration = {"samples": int(out.shape[0]), "accuracy_full": float(correct[:, -1].mean()),
                          "accuracy": res["accuracy"], "mean_steps": res["mean_steps"]}
    return policy


def fixed_policy(steps: int) -> CutoffPolicy:
    """The fixed-T baseline: every sample runs all ``steps``."""
    return CutoffPolicy(np.full(int(steps), np.inf), kind="fixed")


def exit_steps(policy: CutoffPolicy, outputs: Any) -> np.ndarray:
    """Post-hoc exit step of every sample (1-based, in ``1..T``): the first t with score > beta_t, else T.

    ``T`` is the outputs' number of steps; a policy calibrated for fewer steps exits everyone at its last step.
    """
    out = _check_outputs(outputs)
    n, steps, _ = out.shape
    acc = accumulate(out)
    th = np.full(steps, np.inf)
    k = min(steps, policy.steps)
    th[:k] = policy.thresholds[:k]
    if policy.kind == "fixed":
        fire = np.zeros((n, steps), dtype=bool)
    else:
        fire = score_series(acc, policy.kind, policy.temperature, policy.window) > th[None, :]
    fire[:, min(steps, policy.steps) - 1:] = True
    return np.argmax(fire, axis=1).astype(np.int64) + 1


def predictions_at_exit(outputs: Any, steps: Any) -> np.ndarray:
    """``argmax Y(k)`` for each sample's (1-based) exit step ``k``."""
    out = _check_outputs(outputs)
    k = np.asarray(steps, dtype=np.int64)
    if k.shape != (out.shape[0],) or (k.size and (k.min() < 1 or k.max() > out.shape[1])):
        raise InputError(f"exit steps must be (N,) in [1, {out.shape[1]}]", field="steps")
    acc = accumulate(out)
    return np.argmax(acc[np.arange(out.shape[0]), k - 1], axis=-1)


def oracle_exit_steps(outputs: Any, labels: Any) -> np.ndarray:
    """OCT, the oracle: the earliest step after which the prediction stays correct (1-based); T when the sample is
    wrong at T (no exit can make it right). An upper bound on what any exit rule can save at no loss."""
    stable = stably_correct(correct_matrix(outputs, labels))
    steps = stable.shape[1]
    first = np.where(stable.any(axis=1), np.argmax(stable, axis=1) + 1, steps)
    return first.astype(np.int64)


def evaluate(policy: Optional[CutoffPolicy], outputs: Any, labels: Any) -> Dict[str, Any]:
    """Accuracy and steps of a policy on outputs ``(N, T, C)`` (``policy=None``: the OCT oracle).

    Returns ``accuracy``, ``mean_steps``, ``step_reduction`` (T / mean_steps), ``steps`` (N,), ``predictions``.
    """
    out = _check_outputs(outputs)
    lab = _check_labels(labels, out.shape[0], out.shape[2])
    steps = oracle_exit_steps(out, lab) if policy is None else exit_steps(policy, out)
    pred = predictions_at_exit(out, steps)
    mean_steps = float(steps.mean()) if steps.size else float("nan")
    return {"accuracy": float((pred == lab).mean()) if lab.size else float("nan"), "mean_steps": mean_steps,
            "step_reduction": float(out.shape[1] / mean_steps) if steps.size else float("nan"),
            "steps": steps, "predictions": pred}


# ----------------------------------------------------------------------------------------------------------
# Storage with a compiled Program / build directory
# ----------------------------------------------------------------------------------------------------------

def attach_policy(program: Any, policy: CutoffPolicy) -> None:
    """Store the policy in ``program.metadata["cutoff"]`` (JSON-safe dict; saved with the Program)."""
    program.metadata["cutoff"] = policy.to_dict()


def policy_from_program(program: Any) -> Optional[CutoffPolicy]:
    """The policy stored in a Program's metadata, or None."""
    d = getattr(program, "metadata", {}).get("cutoff")
    return None if d is None else CutoffPolicy.from_dict(d)


def load_policy(path: Union[str, Path]) -> CutoffPolicy:
    """A policy from a JSON file written by :meth:`CutoffPolicy.save`, or from a build directory (the Program's
    ``metadata["cutoff"]``, written by ``snnc calibrate``)."""
    p = Path(path)
    if p.is_dir():
        from ..program import Program
        pol = policy_from_program(Program.load(p))
        if pol is None:
            raise ToolchainError("the build holds no cutoff policy; run 'snnc calibrate' first", file=str(p),
                                 field="metadata.cutoff")
        return pol
    return CutoffPolicy.load(p)


# ----------------------------------------------------------------------------------------------------------
# Accuracy-vs-steps trade-off
# ----------------------------------------------------------------------------------------------------------

DEFAULT_EPS_SWEEP = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def _crossfit(outputs: np.ndarray, labels: np.ndarray, eps: float, grid: int, kind: str,
              confidence_level: Optional[float] = None, folds: int = 5, target: str = "stable",
              sequential: bool = False, window: int = 0, pooled: bool = False) -> Dict[str, Any]:
    """K-fold cross-fitting (sample i in fold i mod k): each fold is scored with thresholds calibrated on the
    other folds, so no sample is scored by thresholds calibrated on itself."""
    n = outputs.shape[0]
    steps = np.zeros(n, np.int64)
    pred = np.zeros(n, np.int64)
    fold = np.arange(n) % max(2, min(int(folds), n))
    for f in np.unique(fold):
        ev, cal = fold == f, fold != f
        pol = calibrate(outputs[cal], labels[cal], eps=eps, grid=grid, kind=kind, confidence_level=confidence_level,
                        target=target, sequential=sequential, window=window, pooled=pooled)
        r = evaluate(pol, outputs[ev], labels[ev])
        steps[ev], pred[ev] = r["steps"], r["predictions"]
    return {"accuracy": float((pred == labels).mean()), "mean_steps": float(steps.mean())}


def select_eps(outputs: Any, labels: Any, kind: str = "topk", max_drop: float = 0.002,
               eps_values: Sequence[float] = DEFAULT_EPS_SWEEP, grid: int = 100,
               confidence_level: Optional[float] = None, target: str = "stable",
               sequential: bool = False) -> Tuple[float, List[Dict[str, Any]]]:
    """Pick ``eps`` on held-out calibration data: the value with the fewest mean steps among those whose 5-fold
    cross-fitted accuracy (each fifth scored with thresholds calibrated on the rest) is at most ``max_drop``
    (a fraction, 0.002 = 0.2 points) below the full run's on the same data. **(ours)** Returns ``(eps, sweep)``
    with ``sweep[i] = {"eps", "accuracy", "mean_steps"}``; falls back to the smallest ``eps`` when none meets
    the bound. ``target`` and ``sequential`` as :func:`calibrate`."""
    out = _check_outputs(outputs)
    lab = _check_labels(labels, out.shape[0], out.shape[2])
    base = float(correct_matrix(out, lab)[:, -1].mean())
    sweep = [{"eps": float(e), **_crossfit(out, lab, float(e), grid, kind, confidence_level, target=target,
                                           sequential=sequential)} for e in eps_values]
    ok = [r for r in sweep if r["accuracy"] >= base - max_drop - 1e-12]
    best = min(ok, key=lambda r: (r["mean_steps"], r["eps"])) if ok else min(sweep, key=lambda r: r["eps"])
    return best["eps"], sweep


#: the calibration rules :func:`select_rule` chooses among: (target, sequential)
DEFAULT_RULES = (("stable", False), ("final", True))
#: **(ours)** :data:`DEFAULT_RULES` and the window-margin score over W = 4 steps with one pooled threshold, for
#: both targets: (target, sequential, window, pooled). W = 4 and pooling were chosen on the calibration splits of
#: benchmarks/cutoff.py (seed 0; W = 2, 8, 16 and per-step thresholds for the window were no better there)
WINDOW_RULES = (("stable", False, 0, False), ("final", True, 0, False), ("stable", False, 4, True),
                ("final", True, 4, True))


def select_rule(outputs: Any, labels: Any, kind: str = "topk", max_drop: float = 0.002,
                rules: Sequence[Tuple[Any, ...]] = DEFAULT_RULES, eps_values: Sequence[float] = DEFAULT_EPS_SWEEP,
                grid: int = 100, confidence_level: Optional[float] = None
                ) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Pick the calibration rule (``target``, ``sequential``[, ``window``, ``pooled``]) and ``eps`` together on
    held-out data, as
    :func:`select_eps` picks ``eps``: fewest 5-fold cross-fitted mean steps among the (rule, eps) pairs whose
    cross-fitted accuracy is at most ``max_drop`` below the full run's (ties: the earlier rule, then the smaller
    eps). **(ours)** Returns ``(best, sweep)``, each entry ``{"target", "sequential", "window", "pooled", "eps",
    "accuracy", "mean_steps"}``; falls back to the first rule's smallest eps when no pair meets the bound. A rule is
    ``(target, sequential)`` or ``(target, sequential, window, pooled)`` (see :func:`calibrate`)."""
    if not rules:
        raise InputError("needs at least one (target, sequential) rule", field="rules")
    out = _check_outputs(outputs)
    lab = _check_labels(labels, out.shape[0], out.shape[2])
    base = float(correct_matrix(out, lab)[:, -1].mean())
    sweep: List[Dict[str, Any]] = []
    for i, rule in enumerate(rules):
        if len(rule) not in (2, 4):
            raise InputError(f"a rule is (target, sequential[, window, pooled]), got {rule!r}", field="rules")
        target, seq = rule[0], bool(rule[1])
        window, pooled = (int(rule[2]), bool(rule[3])) if len(rule) == 4 else (0, False)
        if target not in TARGETS:
            raise InputError(f"unknown calibration target {target!r}; expected one of {TARGETS}", field="rules")
        for e in eps_values:
            sweep.append({"rule": i, "target": target, "sequential": seq, "window": window, "pooled": pooled,
                          "eps": float(e), **_crossfit(out, lab, float(e), grid, kind, confidence_level,
                                                       target=target, sequential=seq, window=window,
                                                       pooled=pooled)})
    ok = [r for r in sweep if r["accuracy"] >= base - max_drop - 1e-12]
    pool = ok if ok else [r for r in sweep if r["rule"] == 0]
    key = (lambda r: (r["mean_steps"], r["rule"], r["eps"])) if ok else (lambda r: r["eps"])
    best = dict(min(pool, key=key))
    best.pop("rule")
    return best, sweep


def tradeoff_curves(cal_outputs: Any, cal_labels: Any, outputs: Any, labels: Any,
                    eps_values: Sequence[float] = DEFAULT_EPS_SWEEP, grid: int = 100,
                    confidence_level: Optional[float] = None) -> Dict[str, Any]:
    """Accuracy against mean steps on (``outputs``, ``labels``) for: fixed t = 1..T, Top-K and softmax exits
    calibrated on (``cal_outputs``, ``cal_labels``) at each ``eps``, and the OCT oracle. Each curve is a dict with
    ``mean_steps`` and ``accuracy`` lists (plus ``eps`` for the calibrated ones). With ``cal_outputs=None`` the
    calibrated curves are 5-fold cross-fitted on (``outputs``, ``labels``), so that no sample is scored by
    thresholds calibrated on itself."""
    out = _check_outputs(outputs)
    lab = _check_labels(labels, out.shape[0], out.shape[2])
    if cal_outputs is not None and cal_labels is None:
        raise InputError("calibration outputs given without labels", field="cal_labels")
    curves: Dict[str, Any] = {
        "fixed": {"mean_steps": list(range(1, out.shape[1] + 1)),
                  "accuracy": accuracy_per_step(out, lab).tolist()},
    }
    for kind in ("topk", "softmax"):
        if cal_outputs is None:
            pts = [_crossfit(out, lab, e, grid, kind, confidence_level) for e in eps_values]
        else:
            pts = [evaluate(calibrate(cal_outputs, cal_labels, eps=e, grid=grid, kind=kind,
                                      confidence_level=confidence_level), out, lab) for e in eps_values]
        curves[kind] = {"eps": list(eps_values), "mean_steps": [p["mean_steps"] for p in pts],
                        "accuracy": [p["accuracy"] for p in pts]}
    oct_ = evaluate(None, out, lab)
    curves["oct"] = {"mean_steps": [oct_["mean_steps"]], "accuracy": [oct_["accuracy"]]}
    return curves


def plot_tradeoff(curves: Dict[str, Any], path: Union[str, Path], title: str = "",
                  marks: Optional[Dict[str, Tuple[float, float]]] = None) -> Path:
    """Write the accuracy-vs-average-timesteps plot (PNG) of :func:`tradeoff_curves` output; ``marks``:
    extra labelled points ``name -> (mean_steps, accuracy)``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"fixed": ("k.-", "fixed T"), "softmax": ("bs--", "softmax exit"), "topk": ("ro-", "Top-K cutoff"),
             "oct": ("g*", "OCT (oracle)")}
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, (fmt, label) in style.items():
        for name, c in curves.items():
            if name == key or name.startswith(key + ":"):
                variant = name != key
                lab = label + (f" ({name[len(key) + 1:]})" if variant else "")
                ax.plot(c["mean_steps"], [100 * a for a in c["accuracy"]], fmt.replace("-", ":") if variant else fmt,
                        label=lab, markersize=10 if key == "oct" else 4, alpha=0.6 if variant else 1.0)
    for name, (x, y) in (marks or {}).items():
        ax.plot([x], [100 * y], "mD", markersize=7)
        ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xlabel("average timesteps")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------------------
# Online exit: PyTorch
# ----------------------------------------------------------------------------------------------------------

def _select(tree: Any, keep: Any) -> Any:
    """Index every tensor/array in a (nested) state by ``keep`` along the batch axis (axis 0)."""
    import torch

    if tree is None:
        return None
    if isinstance(tree, torch.Tensor):
        return tree[keep] if tree.dim() > 0 else tree
    if isinstance(tree, np.ndarray):
        return tree[keep.cpu().numpy() if isinstance(keep, torch.Tensor) else keep] if tree.ndim else tree
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # NamedTuple
        return type(tree)(*(_select(v, keep) for v in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(_select(v, keep) for v in tree)
    if isinstance(tree, dict):
        return {k: _select(v, keep) for k, v in tree.items()}
    if hasattr(tree, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.replace(tree, **{f: _select(getattr(tree, f), keep)
                                            for f in tree.__dataclass_fields__})
    return tree


def run_with_cutoff(model: Any, x: Any, policy: CutoffPolicy, *, return_outputs: bool = False
                    ) -> Dict[str, Any]:
    """Run a ``SpikingNet`` step by step on ``x`` (B, T, *in_shape) with per-sample early exit.

    After each step the accumulated output of the samples still running is scored; those that exit leave the
    batch (their rows are removed from the input and from every state tensor), so later steps cost less.
    Returns ``predictions`` (B,) int64, ``steps`` (B,) 1-based exit steps, ``accumulated`` (B, C) float64 ``Y``
    at exit, ``sample_steps`` (total sample-steps computed), and with ``return_outputs`` the per-step outputs
    ``(B, T, C)`` as float64 with NaN after each sample's exit.
    """
    import torch

    xt = torch.as_tensor(x)
    if xt.dim() < 3:
        raise InputError(f"must have shape (B, T, *in_shape), got {tuple(xt.shape)}", field="x")
    b, steps = int(xt.shape[0]), int(xt.shape[1])
    active = torch.arange(b)
    states = None
    acc_all: Optional[torch.Tensor] = None
    exit_at = np.full(b, steps, dtype=np.int64)
    outs: Optional[np.ndarray] = None
    sample_steps = 0
    early_exit = policy.hook()
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            acc = None
            for t in range(steps):
                if active.numel() == 0:
                    break
                y, states = model.step(xt[active, t], states)
                y = y.reshape(y.shape[0], -1).to(torch.float64)
                sample_steps += int(active.numel())
                if acc_all is None:
                    acc_all = torch.zeros(b, y.shape[1], dtype=torch.float64)
                    if return_outputs:
                        outs = np.full((b, steps, y.shape[1]), np.nan)
                acc = y if acc is None else acc + y
                if outs is not None:
                    outs[active.numpy(), t] = y.numpy()
                done = torch.as_tensor(np.asarray(early_exit(t, acc.numpy())), dtype=torch.bool)
                if t == steps - 1:
                    done = torch.ones_like(done)
                if bool(done.any()):
                    idx = active[done]
                    acc_all[idx] = acc[done]
                    exit_at[idx.numpy()] = t + 1
                    keep = ~done
                    active = active[keep]
                    acc = acc[keep]
                    states = _select(states, keep)
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)
    assert acc_all is not None
    acc_np = acc_all.numpy()
    res = {"predictions": np.argmax(acc_np, axis=1).astype(np.int64), "steps": exit_at, "accumulated": acc_np,
           "sample_steps": sample_steps}
    if return_outputs:
        res["outputs"] = outs
    return res


# ----------------------------------------------------------------------------------------------------------
# Online exit: Lava (one sample at a time, RunSteps(1) per step)
# ----------------------------------------------------------------------------------------------------------

def run_lava_with_cutoff(program: Any, x: Any, policy: CutoffPolicy, steps: Optional[int] = None,
                         progress: bool = False) -> Any:
    """Run a compiled Program on Lava (``fixed_pt`` CPU models) one sample at a time with early exit.

    Every sample gets a fresh network (:class:`toolchain.backends.lava.LavaStepper`) that runs one step at a time
    (``RunSteps(1)``); its output (spikes, or ``v`` of a non-spiking readout, as the reference simulator's
    ``early_exit`` hook sees it) is accumulated after each step and the run stops at the exit step, so Lava
    really simulates only ``steps_run[i]`` steps of sample ``i``. ``x``: (B, T, *in_shape) integer input (or a
    mapping port name -> array); ``steps``: steps to run (default T; more pads the input with silence).
    Returns a :class:`toolchain.sim.record.SimResult` (backend "lava") holding the output group only, zero after
    each sample's exit, with ``steps_run`` — the format of the reference simulator's early-exit run.
    """
    from ..backends.lava import LavaStepper
    from ..sim.record import SimResult
    from ..sim.reference import prepare_inputs
    from tqdm.auto import tqdm

    inputs, b, n_steps = prepare_inputs(program, x, steps)
    name = program.output
    group = program.groups[name]
    var = "s" if group.spiking else "v"
    outs = np.zeros((b, n_steps, group.size), np.uint8 if group.spiking else np.int32)
    exit_at = np.full(b, n_steps, dtype=np.int64)
    for i in tqdm(range(b), desc="lava+cutoff", unit="sample", disable=not progress, leave=False):
        acc = np.zeros((1, group.size), np.int64)
        early_exit = policy.hook()  # a fresh history per sample
        with LavaStepper(program, {k: a[i:i + 1] for k, a in inputs.items()}, steps=n_steps) as run:
            for t in range(n_steps):
                y = np.asarray(run.step()[var], dtype=np.int64).reshape(1, -1)
                outs[i, t] = y[0]
                acc += y
                if t == n_steps - 1 or bool(np.asarray(early_exit(t, acc.copy())).reshape(-1)[0]):
                    exit_at[i] = t + 1
                    break
    spikes = {name: outs} if group.spiking else {}
    v = {} if group.spiking else {name: outs}
    return SimResult(spikes=spikes, u={}, v=v, output=outs, output_group=name,
                     output_kind="spikes" if group.spiking else "v", steps_run=exit_at, backend="lava",
                     groups=[name])


def simulate_with_cutoff(program: Any, x: Any, steps: Optional[int] = None, backend: str = "reference",
                         record: bool = False, policy: Optional[CutoffPolicy] = None,
                         device: Optional[str] = None) -> Any:
    """Per-sample early-exit run of a Program with ``policy`` (default: the one stored in its metadata by
    ``snnc calibrate``) on the reference simulator (``record`` as :func:`toolchain.sim.reference.simulate`), its
    torch backend (``backend="torch"`` on ``device``) or on Lava (output group only). Returns the
    :class:`~toolchain.sim.record.SimResult` with ``steps_run``."""
    policy = policy if policy is not None else policy_from_program(program)
    if policy is None:
        raise ToolchainError("the program holds no cutoff policy; run 'snnc calibrate' first",
                             field="metadata.cutoff")
    if backend in ("reference", "torch"):
        from ..sim.reference import simulate
        return simulate(program, x, steps=steps, record=record, early_exit=policy.hook(),
                        backend="torch" if backend == "torch" else "numpy", device=device)
    if backend == "lava":
        if record:
            raise InputError("recording every group is not available for Lava runs with early exit",
                             field="record")
        return run_lava_with_cutoff(program, x, policy, steps=steps)
    raise InputError(f"must be 'reference', 'torch' or 'lava', got {backend!r}", field="backend")
