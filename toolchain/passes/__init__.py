"""Compiler passes: normalise and fuse (Graph -> Graph), quantise (Graph -> Program), partition
(Program -> Program), stage checks, and the per-target pipeline (see :mod:`.pipeline`)."""
from .checks import check_normalised, check_partitioned, check_quantised, verify_program
from .fuse import insert_identity_synapses, merge_linear_chains, merge_parallel_linear, split_linear_fan
from .normalise import (conv_to_csr, flatten_shapes, fold_affine_bias_into_neuron, fold_scale_into_linear,
                        lower_conv_and_pool, pool_to_csr)
from .partition import format_report, partition
from .pipeline import PIPELINES, CompileContext, Pass, PassError, pipeline_for, run_pipeline
from .quantise import QuantOptions, quantise

__all__ = [
    "check_normalised", "check_partitioned", "check_quantised", "verify_program", "insert_identity_synapses",
    "merge_linear_chains", "merge_parallel_linear", "split_linear_fan", "conv_to_csr", "flatten_shapes",
    "fold_affine_bias_into_neuron", "fold_scale_into_linear", "lower_conv_and_pool", "pool_to_csr",
    "format_report", "partition", "PIPELINES", "CompileContext", "Pass", "PassError", "pipeline_for",
    "run_pipeline", "QuantOptions", "quantise",
]
