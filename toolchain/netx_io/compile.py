"""``compile_netx``: a netx file -> a partitioned, verified Program for a target (no quantisation: the file is
already integer)."""
from __future__ import annotations

import os
import time
from typing import Any, Optional, Union

from ..errors import ToolchainError
from ..program import Program
from ..targets import TargetSpec, load_target
from .load import NetxImportError, load_netx

__all__ = ["compile_netx"]


def compile_netx(path: Union[str, os.PathLike], target: Union[str, os.PathLike, TargetSpec] = "loihi2",
                 reset_interval: Optional[int] = None, reset_offset: int = 0, input_message_bits: int = 0,
                 sparse_fc_layer: bool = False, partition: bool = True, verify: bool = True,
                 **unused: Any) -> Program:
    """Load ``path`` with :func:`~toolchain.netx_io.load_netx`, check it against ``target``'s integer fields and
    place it on cores (:func:`toolchain.passes.partition.partition`). Options that only concern float graphs
    (``dt``, ``reset``, ``preset``, ``vth_max``, ...) are refused with a :class:`NetxImportError`.
    """
    from ..passes.checks import verify_program
    from ..passes.partition import partition as place
    given = sorted(k for k, v in unused.items() if v is not None and v is not False)
    if given:
        raise NetxImportError(f"option(s) {given} do not apply to a netx file (it is already integer: nothing is "
                              "quantised)", file=os.fspath(path), field=given[0])
    spec = load_target(target)
    t0 = time.perf_counter()
    prog = load_netx(path, reset_interval=reset_interval, reset_offset=reset_offset,
                     input_message_bits=input_message_bits, sparse_fc_layer=sparse_fc_layer, target=spec.name)
    timings = {"load_netx": time.perf_counter() - t0}
    try:
        if verify:
            verify_program(prog, "quantised", spec)
        if partition:
            t0 = time.perf_counter()
            prog = place(prog, spec)
            timings["partition"] = time.perf_counter() - t0
            if verify:
                verify_program(prog, "partitioned", spec)
    except ToolchainError as exc:
        raise type(exc)(exc.message, file=exc.file or os.fspath(path), node=exc.node, field=exc.field) from None
    prog.metadata["pipeline"] = ["load_netx"] + (["partition"] if partition else [])
    prog.metadata["target_file"] = spec.source
    return prog
