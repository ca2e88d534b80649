"""The pass pipeline: one readable list of named passes per target, and the runner.

The runner applies the passes in order, runs ``verify`` at each stage boundary (after normalising, after
quantising, after partitioning) and re-raises any error with the name of the failing pass and the passes before it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..errors import ToolchainError
from ..ir.graph import Graph
from ..ir.verify import verify
from ..targets import TargetSpec
from .checks import verify_program
from .fuse import insert_identity_synapses, merge_linear_chains, merge_parallel_linear, split_linear_fan
from .normalise import (add_readout_for_trailing_synapse, flatten_shapes, fold_affine_bias_into_neuron,
                        fold_scale_into_linear, lower_conv_and_pool)
from .partition import partition
from .quantise import QuantOptions, quantise

__all__ = ["Pass", "CompileContext", "PIPELINES", "pipeline_for", "run_pipeline", "PassError"]


class PassError(ToolchainError):
    """An unexpected (non-toolchain) exception inside a pass, re-raised with the pass name."""


@dataclass
class CompileContext:
    """What passes may read besides their input: the target and the options."""

    target: TargetSpec
    quant: QuantOptions = field(default_factory=QuantOptions)
    verify: bool = True
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    """A named step: ``fn(obj, ctx) -> obj``; ``boundary`` names the verify level run after it (if any)."""

    name: str
    fn: Callable[[Any, CompileContext], Any]
    boundary: Optional[str] = None


def _graph(fn: Callable[[Graph], Graph]) -> Callable[[Graph, CompileContext], Graph]:
    return lambda g, ctx: fn(g)


def _verify_import(g: Graph, ctx: CompileContext) -> Graph:
    return verify(g, "import") if ctx.verify else g


LOIHI_PIPELINE: List[Pass] = [
    Pass("verify_import", _verify_import),
    Pass("flatten_shapes", _graph(flatten_shapes)),
    Pass("lower_conv_and_pool", _graph(lower_conv_and_pool)),
    Pass("fold_scale_into_linear", _graph(fold_scale_into_linear)),
    Pass("split_linear_fan", _graph(split_linear_fan)),
    Pass("merge_linear_chains", _graph(merge_linear_chains)),
    Pass("merge_parallel_linear", _graph(merge_parallel_linear)),
    Pass("add_readout_for_trailing_synapse", _graph(add_readout_for_trailing_synapse)),
    Pass("insert_identity_synapses", _graph(insert_identity_synapses)),
    Pass("fold_affine_bias_into_neuron", _graph(fold_affine_bias_into_neuron), boundary="normalised"),
    Pass("quantise", lambda g, ctx: quantise(g, ctx.target, ctx.quant), boundary="quantised"),
    Pass("partition", lambda p, ctx: partition(p, ctx.target), boundary="partitioned"),
]

#: target name -> pipeline. Both Loihi generations run the same passes (the target data differs); a user target
#: without an entry gets :data:`LOIHI_PIPELINE`.
PIPELINES: Dict[str, List[Pass]] = {"loihi1": LOIHI_PIPELINE, "loihi2": LOIHI_PIPELINE}


def pipeline_for(target: TargetSpec, partition: bool = True) -> List[Pass]:
    """The pass list for ``target`` (without the partition pass when ``partition`` is False)."""
    passes = PIPELINES.get(target.name, LOIHI_PIPELINE)
    return [p for p in passes if partition or p.name != "partition"]


def _boundary(obj: Any, level: str, ctx: CompileContext) -> Any:
    if not ctx.verify:
        return obj
    if isinstance(obj, Graph):
        return verify(obj, level)
    return verify_program(obj, level, ctx.target)


def run_pipeline(graph: Graph, passes: List[Pass], ctx: CompileContext) -> Any:
    """Apply ``passes`` to ``graph``; errors are re-raised naming the pass and the passes before it."""
    obj: Any = graph
    done: List[str] = []
    for p in passes:
        t0 = time.perf_counter()
        try:
            obj = p.fn(obj, ctx)
            if p.boundary:
                obj = _boundary(obj, p.boundary, ctx)
        except ToolchainError as exc:
            raise _annotate(exc, p.name, done) from exc
        except Exception as exc:  # a bug, not bad input: keep the type's name and the pass
            raise PassError(f"internal error {type(exc).__name__}: {exc} [in pass '{p.name}'; passes before: "
                            f"{', '.join(done) or 'none'}]") from exc
        ctx.timings[p.name] = time.perf_counter() - t0
        done.append(p.name)
    return obj


def _annotate(exc: ToolchainError, name: str, done: List[str]) -> ToolchainError:
    msg = f"{exc.message} [in pass '{name}'; passes before: {', '.join(done) or 'none'}]"
    try:
        new = type(exc)(msg, file=exc.file, node=exc.node, field=exc.field)
    except TypeError:  # a subclass with another constructor
        new = ToolchainError(msg, file=exc.file, node=exc.node, field=exc.field)
    for k, v in vars(exc).items():
        if k not in ("message", "file", "node", "field"):
            setattr(new, k, v)
    new.pass_name = name  # type: ignore[attr-defined]
    new.passes_before = list(done)  # type: ignore[attr-defined]
    return new
