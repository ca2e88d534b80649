"""``compile_graph``: IR graph -> partitioned, verified :class:`~toolchain.program.Program` for a target.

    >>> from toolchain.compile import compile_graph, format_report
    >>> prog = compile_graph(graph, target="loihi2", dt=1e-3)
    >>> print(format_report(prog))
    >>> prog.save("build/")

The passes are listed in :mod:`toolchain.passes.pipeline`; the integer mapping is documented in
:mod:`toolchain.passes.quantise`, the core placement in :mod:`toolchain.passes.partition`.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import replace
from typing import Any, Optional, Tuple, Union

import numpy as np

from .errors import GraphError, QuantisationError, ResourceError, ToolchainError
from .ir.graph import Graph
from .ir.nodes import RESET_MODES
from .limits import check_graph, check_graph_fits
from .passes.partition import format_report
from .passes.pipeline import CompileContext, pipeline_for, run_pipeline
from .passes.quantise import QuantOptions
from .program import Program
from .targets import TargetSpec, load_target

__all__ = ["compile_graph", "compile_file", "format_report", "place_on_chips", "OPTIONS", "AUTO_V_HEADROOM"]

#: v headroom (thresholds below zero) of the split candidate under ``weight_split="auto"`` when the user gives none:
#: the companion group only carries bits where the threshold mantissa may grow past the inhibitory worst case
AUTO_V_HEADROOM = 16.0

#: compile options (keyword arguments of :func:`compile_graph`) and their meaning
OPTIONS = {
    "vth_max": "largest threshold mantissa of a spiking group (default 2**14: 3 bits of headroom above threshold)",
    "equalise_latency": "add synaptic delays so that paths of different depth stay aligned (default True)",
    "readout_horizon": "steps a non-leaky readout must stay unsaturated at full input (default 1024)",
    "search_vth": "search the threshold mantissa for the best weight representation in small layers (default True)",
    "align_bias": "start biased groups at the voltage that hides the bias until their input arrives, so the compiled "
                  "network is the float one delayed by its latency (default True)",
    "cuba_bias": "'current' (default: an Affine bias into a CubaLIF reaches its synaptic current exactly, through "
                 "synapses from an always-on neuron) or 'fold' (into the voltage bias: inexact, warns)",
    "weight_split": "'auto' (default), True or False: give each synapse group a companion group carrying its "
                    "rounding remainder (about 7 more bits of weight precision where the exponent allows; twice "
                    "the synapses); 'auto' compiles both ways and keeps the split (with v_headroom 16 unless given) "
                    "only when it needs no more cores and at least halves the worst weight error "
                    "(metadata['precision'] says what was chosen)",
    "v_headroom": "thresholds below zero a spiking group's v may reach before saturating (default None: the worst "
                  "case, every inhibitory input spiking every step; weight_split='auto' uses 16 for its split "
                  "candidate)",
    "partition": "place the network on cores (default True); False stops after quantisation",
    "chips": "on a system target (a [system] section: kapoho_point, hala_point) assign the cores to chips so that "
             "the fewest spikes cross between chips (toolchain.passes.multichip; default True; the chip map and "
             "inter-chip spikes per step go to report['multichip'])",
    "chip_method": "chip assignment kept: 'hypergraph' (default, Mt-KaHyPar), 'edgecut' (METIS) or 'inorder'",
    "chip_rates": "recorded spike rates {group: spikes per step of each neuron} (multichip.rates_from_spikes) "
                  "weighting the axons (default: the estimate of 1 spike per neuron per step)",
    "verify": "run the stage-boundary checks (default True)",
}


def compile_graph(graph: Graph, target: Union[str, os.PathLike, TargetSpec] = "loihi2", dt: Optional[float] = None,
                  reset: Optional[str] = None, **options: Any) -> Program:
    """Compile an IR graph for ``target`` (name, path of a target TOML file, or TargetSpec).

    ``dt`` (seconds) overrides ``graph.dt``; ``reset`` ("zero"/"subtract") overrides every spiking node's reset
    mode; ``options``: see :data:`OPTIONS`. Returns the Program with ``report`` (resources), ``quant_report``
    (per-layer quantisation errors and headroom) and ``metadata["latency_steps"]`` (per group: the compiled
    network's output at step t equals the float network's at step t - latency).
    Raises :class:`~toolchain.errors.ToolchainError` subclasses naming the pass, node, field and limit.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise GraphError(f"unknown compile option(s) {unknown}; options are {sorted(OPTIONS)}", field="options")
    if not isinstance(graph, Graph):
        raise GraphError(f"expected a toolchain.ir.Graph, got {type(graph).__name__}", field="graph")
    spec = load_target(target)
    if reset is not None and reset not in RESET_MODES:
        raise QuantisationError(f"reset must be one of {RESET_MODES}, got {reset!r}", field="reset")
    if dt is not None:
        try:
            dt = float(dt)
        except (TypeError, ValueError):
            raise QuantisationError(f"dt must be a number of seconds, got {dt!r}", field="dt") from None
        graph = graph.replace(dt=dt)
    if graph.dt is None:
        raise QuantisationError("no time step: the graph stores no dt; give one (compile_graph(..., dt=SECONDS), "
                                "snnc compile --dt SECONDS)", field="dt")
    if not (graph.dt > 0 and math.isfinite(graph.dt)):
        raise QuantisationError(f"dt must be a positive number of seconds, got {graph.dt}", field="dt")
    check_graph(graph)  # defects a pass would loop on or trip over, named before any pass runs
    check_graph_fits(graph, spec)  # totals against the target and the memory budget, before passes allocate
    q = QuantOptions(vth_max=int(options.get("vth_max", QuantOptions.vth_max)),
                     equalise_latency=bool(options.get("equalise_latency", True)),
                     readout_horizon=int(options.get("readout_horizon", QuantOptions.readout_horizon)),
                     reset=reset, search_vth=bool(options.get("search_vth", True)),
                     align_bias=bool(options.get("align_bias", True)),
                     cuba_bias=str(options.get("cuba_bias", QuantOptions.cuba_bias)),
                     weight_split=False, v_headroom=_v_headroom(options.get("v_headroom")))
    split = _weight_split(options.get("weight_split", "auto"))
    verify = bool(options.get("verify", True))
    passes = pipeline_for(spec, partition=bool(options.get("partition", True)))
    precision: dict = {"weight_split": split}
    if split == "auto":
        prog, ctx, precision = _auto_split(graph, spec, q, verify, passes, options.get("v_headroom") is None)
    else:
        ctx = CompileContext(spec, replace(q, weight_split=split), verify=verify)
        prog = _run(graph, passes, ctx)
    rates = options.get("chip_rates")
    if bool(options.get("partition", True)) and bool(options.get("chips", True)):
        prog = place_on_chips(prog, spec, rates, str(options.get("chip_method", "hypergraph")), ctx)
    prog.metadata["pipeline"] = [p.name for p in passes] + (["chips"] if "multichip" in prog.report else [])
    prog.metadata["pass_seconds"] = {k: round(v, 6) for k, v in ctx.timings.items()}
    prog.metadata["target_file"] = os.path.basename(spec.source) if spec.source else None  # no host folder
    prog.metadata["precision"] = precision
    prog.metadata["compile_options"] = {"dt": float(graph.dt), "reset": reset,
                                        **{k: ("recorded" if k == "chip_rates" else options[k]) for k in options}}
    return prog


def place_on_chips(prog: Program, spec: TargetSpec, rates: Any = None, method: str = "hypergraph",
                   ctx: Optional[CompileContext] = None) -> Program:
    """The chip-assignment step of the compile pipeline: on a system target (:func:`multichip.is_system`) with
    the Program placed on cores, :func:`~toolchain.passes.multichip.partition_chips` (every method side by side
    in ``report["multichip"]``); any other Program is returned unchanged. ``rates``: recorded spike rates or
    None (estimate). The seconds it took go to ``ctx.timings["chips"]``."""
    from .passes.multichip import METHODS, is_system, partition_chips
    if prog.placement is None or not is_system(spec):
        return prog
    if method not in METHODS:
        raise ToolchainError(f"unknown chip_method {method!r}; use one of {list(METHODS)}", field="chip_method")
    if rates is not None and not isinstance(rates, dict):
        raise ToolchainError("chip_rates must map group names to spike rates per neuron", field="chip_rates")
    import time
    t0 = time.perf_counter()
    try:
        out = partition_chips(prog, spec, rates, method=method)
    except ToolchainError as exc:
        raise _annotate_chips(exc) from exc
    if ctx is not None:
        ctx.timings["chips"] = time.perf_counter() - t0
    return out


def _annotate_chips(exc: ToolchainError) -> ToolchainError:
    try:
        return type(exc)(f"{exc.message} [in pass 'chips']", file=exc.file, node=exc.node, field=exc.field)
    except TypeError:
        return ToolchainError(f"{exc.message} [in pass 'chips']", file=exc.file, node=exc.node, field=exc.field)


def _run(graph: Graph, passes: list, ctx: CompileContext) -> Program:
    try:
        return run_pipeline(graph, passes, ctx)
    except ToolchainError as exc:
        if isinstance(exc.__cause__, MemoryError):  # not a bug: the machine ran out
            raise ResourceError(f"out of memory in pass '{getattr(exc, 'pass_name', None) or _pass_of(exc)}' "
                                f"({exc.__cause__}); raise the memory limit, prune the network or store its "
                                f"weights sparse", node=exc.node, field="memory") from exc.__cause__
        raise


def _weight_split(v: Any) -> Union[bool, str]:
    if isinstance(v, str) and v.lower() == "auto":
        return "auto"
    if isinstance(v, (bool, np.bool_)) or v in (0, 1):
        return bool(v)
    raise QuantisationError(f"weight_split must be 'auto', True or False, got {v!r}", field="weight_split")


def _worst_weight_error(prog: Program) -> float:
    """Largest relative weight error over the synapse groups that carry weights (a split pair reports the pair's,
    on its companion group), bias synapses left out."""
    from .passes.quantise import BIAS_GROUP, SPLIT_SUFFIX
    rep = prog.quant_report.get("synapses", {})
    err: dict = {}
    for name, r in rep.items():
        if r.get("src") == BIAS_GROUP:
            continue
        base = name.split("@d")[0]
        pair = base[:-len(SPLIT_SUFFIX)] if base.endswith(SPLIT_SUFFIX) else base
        e = float(r.get("weight_rel_error_max", 0.0))
        err[pair] = e if base.endswith(SPLIT_SUFFIX) else min(err.get(pair, e), e)
    return max(err.values(), default=0.0)


def _cores(prog: Program, spec: TargetSpec) -> Optional[int]:
    """Cores the Program needs on ``spec`` (partitioning it when it is not placed yet); None when it does not fit."""
    if prog.report.get("cores_used") is not None:
        return int(prog.report["cores_used"])
    from .passes.partition import partition
    try:
        return int(partition(prog, spec).report["cores_used"])
    except ToolchainError:
        return None


def _auto_split(graph: Graph, spec: TargetSpec, q: QuantOptions, verify: bool, passes: list,
                default_headroom: bool) -> Tuple[Program, CompileContext, dict]:
    """``weight_split="auto"``: compile without and with the companion groups (the split candidate with
    :data:`AUTO_V_HEADROOM` unless the user gave ``v_headroom``) and keep the split when it needs no more cores
    on ``spec`` and at least halves the worst relative weight error; otherwise the plain Program. Warnings of the
    Program kept are re-issued, the other's dropped, except the split build's own negative-v-headroom warnings
    (the relaxed headroom is part of this choice): the note names those groups instead. Returns the Program, its context and the account that goes
    to ``metadata["precision"]`` (with a one-line ``note``)."""
    ctx0 = CompileContext(spec, q, verify=verify)
    with warnings.catch_warnings(record=True) as w0:
        warnings.simplefilter("always")
        plain = _run(graph, passes, ctx0)
    q1 = replace(q, weight_split=True, v_headroom=AUTO_V_HEADROOM if default_headroom else q.v_headroom)
    ctx1 = CompileContext(spec, q1, verify=verify)
    split: Optional[Program] = None
    why = ""
    with warnings.catch_warnings(record=True) as w1:
        warnings.simplefilter("always")
        try:
            split = _run(graph, passes, ctx1)
        except ToolchainError as exc:
            why = f"the split does not compile ({exc.message})"
    acc: dict = {"weight_split": "auto", "split": [], "v_headroom": q.v_headroom}
    if split is not None:
        from .passes.quantise import SPLIT_SUFFIX
        c0, c1 = _cores(plain, spec), _cores(split, spec)
        e0, e1 = _worst_weight_error(plain), _worst_weight_error(split)
        acc.update(cores_plain=c0, cores_split=c1, weight_error_plain=e0, weight_error_split=e1)
        lo = sorted({s.name.split("@d")[0][:-len(SPLIT_SUFFIX)] for s in split.synapses
                     if s.name.split("@d")[0].endswith(SPLIT_SUFFIX)})
        if not lo:
            why = "no synapse group has a remainder to carry"
        elif c1 is None or (c0 is not None and c1 > c0):
            why = f"the split needs {c1 if c1 is not None else 'more'} cores against {c0}"
        elif not e1 <= 0.5 * e0:
            why = f"the split would only take the worst weight error from {e0:.2g} to {e1:.2g}"
        else:
            # the relaxed headroom is this choice's own: its negative-headroom warnings go into the note (and stay
            # in quant_report["warnings"]); warnings the plain build has too are re-issued as they are
            plain_msgs = {str(m.message) for m in w0}
            own = [m for m in w1 if "negative v headroom" in str(m.message) and str(m.message) not in plain_msgs]
            sat = sorted({str(m.message).split("'")[1] for m in own if "'" in str(m.message)})
            acc.update(split=lo, v_headroom=q1.v_headroom, v_may_saturate=sat)
            acc["note"] = (f"precision: weight_split on {len(lo)} synapse group(s) ({', '.join(lo)}), v_headroom "
                           f"{q1.v_headroom:g}: worst weight error {e0:.2g} -> {e1:.2g}, cores {c0} -> {c1}"
                           + (f"; v may saturate below -{q1.v_headroom:g} thresholds in {', '.join(sat)} (the "
                              f"inhibitory worst case is not covered; snnc fidelity counts it)" if sat else "")
                           + " (weight_split=False turns it off)")
            for m in w1:
                if m not in own:
                    warnings.warn_explicit(m.message, m.category, m.filename, m.lineno)
            return split, ctx1, acc
    acc["note"] = f"precision: no weight split ({why})"
    for m in w0:
        warnings.warn_explicit(m.message, m.category, m.filename, m.lineno)
    return plain, ctx0, acc


def _v_headroom(v: Any) -> Optional[float]:
    if v is None:
        return None
    try:
        k = float(v)
    except (TypeError, ValueError):
        raise QuantisationError(f"v_headroom must be a number of thresholds, got {v!r}", field="v_headroom") from None
    if not (k > 0 and math.isfinite(k)):
        raise QuantisationError(f"v_headroom must be a positive number of thresholds, got {v!r}",
                                field="v_headroom")
    return k


def compile_file(path: Union[str, os.PathLike], target: Union[str, os.PathLike, TargetSpec] = "loihi2",
                 dt: Optional[float] = None, reset: Optional[str] = None, preset: Optional[str] = None,
                 **options: Any) -> Program:
    """Load a ``.nir`` file with :func:`toolchain.nir_io.load` and compile it (see :func:`compile_graph`); a
    lava-dl netx ``.net`` file is read with :func:`toolchain.netx_io.compile_netx` instead (already integer:
    options ``reset_interval``, ``reset_offset``, ``input_message_bits``, ``sparse_fc_layer``, ``partition``).
    ``for_netx=True`` compiles a NIR file with :func:`toolchain.backends.netx.compile_for_netx` (a
    representation a netx file can hold; what changed is in ``metadata["netx_changes"]``).

    ``source_dt``: the time step the exporting framework simulated with, for presets that decode time constants
    with it (Norse's ``tau·dt``), independent of the target ``dt``.

    Errors name the file. ``metadata["file"]`` is the file's name (no folder: builds do not depend on where the
    input lies) and ``metadata["file_sha256"]`` its content's hash."""
    from .limits import check_nir_compile_size
    from .netx_io import compile_netx, is_netx_file
    from .nir_io import load
    for_netx = bool(options.pop("for_netx", False))
    source_dt = options.pop("source_dt", None)  # the dt the exporting framework simulated with (presets)
    if is_netx_file(path):
        chip_opts = {k: options.pop(k) for k in ("chips", "chip_method", "chip_rates") if k in options}
        prog = compile_netx(path, target, dt=dt, reset=reset, preset=preset, source_dt=source_dt, **options)
        if chip_opts.get("chips", True) and options.get("partition", True):
            prog = place_on_chips(prog, load_target(target), chip_opts.get("chip_rates"),
                                  str(chip_opts.get("chip_method", "hypergraph")))
        prog.metadata["file"] = os.path.basename(os.fspath(path))
        prog.metadata["file_sha256"] = _sha256(path)
        return prog
    if os.path.isfile(path):  # what the compiler or the target could not hold is refused before reading the file
        check_nir_compile_size(path, spec=target if isinstance(target, TargetSpec) else _try_target(target))
    try:
        graph = load(path, dt=dt, reset=reset, preset=preset, source_dt=source_dt)
    except MemoryError as exc:  # the size checks passed but the machine ran out while reading
        raise ResourceError(f"out of memory while reading the file ({exc or 'no detail'}); raise the memory "
                            f"limit or prune the network", file=os.fspath(path), field="memory") from None
    try:
        if for_netx:
            from .backends.netx import compile_for_netx
            prog = compile_for_netx(graph, target, dt=None if graph.dt is not None else dt, reset=reset, **options)
        else:
            prog = compile_graph(graph, target, dt=None if graph.dt is not None else dt, reset=reset, **options)
    except ToolchainError as exc:
        if exc.file is not None:
            raise
        raise _with_file(exc, os.fspath(path)) from exc
    prog.metadata["file"] = os.path.basename(os.fspath(path))
    prog.metadata["file_sha256"] = _sha256(path)
    return prog


def _sha256(path: Union[str, os.PathLike]) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pass_of(exc: Exception) -> str:
    m = re.search(r"\[in pass '([^']*)'", str(exc))
    return m.group(1) if m else "?"


def _try_target(target: Union[str, os.PathLike]) -> Optional[TargetSpec]:
    try:
        return load_target(target)
    except ToolchainError:
        return None  # compile_graph names the bad target


def _with_file(exc: ToolchainError, file: str) -> ToolchainError:
    """``exc`` re-made with ``file`` set (same type and extra attributes where the constructor allows); the
    runner's list of the passes before the failing one (kept in ``passes_before``) is left out of the line."""
    msg = re.sub(r" \[in pass '([^']*)'; passes before: [^\]]*\]", r" [in pass '\1']", exc.message)
    try:
        new = type(exc)(msg, file=file, node=exc.node, field=exc.field)
    except TypeError:  # a subclass with another constructor
        new = ToolchainError(msg, file=file, node=exc.node, field=exc.field)
    for k, v in vars(exc).items():
        if k not in ("message", "file", "node", "field"):
            setattr(new, k, v)
    return new
