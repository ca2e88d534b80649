"""Inference-time runtime: Cutoff early exit (:mod:`.cutoff`) and NeuroBench-style metrics (:mod:`.metrics`)."""
from .cutoff import CutoffPolicy, calibrate, evaluate, exit_steps, oracle_exit_steps, run_with_cutoff

__all__ = ["CutoffPolicy", "calibrate", "evaluate", "exit_steps", "oracle_exit_steps", "run_with_cutoff"]
