"""Compare a run of Intel's PilotNet-LIF netx network with the states Intel's Loihi 2 hardware test requires
(``shared/data/lava-dl/pilotnet_lif/``, recorded upstream in lava-dl; see that folder's README).

Arrays: ``input.npy`` and ``conv-K.npy`` / ``fc-K.npy`` (spikes), ``conv-K-u/-v.npy``, ``fc-K-u/-v.npy`` (int32
current and voltage), ``fc-3-s/-u/-v.npy`` (float, 25 entries), each (W, H, C, T) or (n, T), time last. The k-th
layer lava-dl builds is the Program's k-th group: ``input`` -> group 0, ``conv-K`` -> group K + 1, ``fc-K`` ->
group 6 + K (the flatten layer builds nothing).

Rules (the data README's measurements with lava-dl's own reader on Lava):
* spikes and ``u``: equal at every recorded step;
* ``v``: equal, except at a step where the neuron spiked: Lava reports ``v = 0`` after the reset, the recording
  holds 128 there (a recording convention; ``u``, the spikes and every later ``v`` agree);
* ``fc-3-u``/``fc-3-v`` (float, "recorded differently"): compared and reported, not counted — lava-dl's own
  reader agrees at 13 of the first 15 steps too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

import numpy as np

from ..program import Program
from ..sim.record import SimResult

__all__ = ["TraceRow", "compare_pilotnet", "pilotnet_exact", "format_trace_table", "PILOTNET_STEPS",
           "PILOTNET_RESET_INTERVAL"]

#: lava-dl's hardware test runs 15 steps with ``reset_interval=16``
PILOTNET_STEPS = 15
PILOTNET_RESET_INTERVAL = 16

_NOT_COUNTED = ("fc-3-u", "fc-3-v")


@dataclass(frozen=True)
class TraceRow:
    """One recorded array against one group's record: steps compared and equal, the rule applied, and whether
    it counts towards the exactness claim."""

    array: str
    group: str
    kind: str
    steps: int
    equal_steps: int
    rule: str
    counted: bool

    @property
    def exact(self) -> bool:
        return self.equal_steps == self.steps


def _group_for(name: str, groups: List[str]) -> str:
    if name == "input":
        return groups[0]
    kind, k = name.split("-")[:2]
    return groups[int(k) + 1] if kind == "conv" else groups[6 + int(k)]


def compare_pilotnet(result: SimResult, program: Program, folder: Union[str, os.PathLike],
                     steps: int = PILOTNET_STEPS, sample: int = 0) -> List[TraceRow]:
    """Every recorded array in ``folder`` against ``result`` (recorded with ``record=True``)."""
    folder = Path(folder)
    groups = list(program.groups)
    rows: List[TraceRow] = []
    for path in sorted(folder.glob("*.npy")):
        name = path.stem
        if name in ("image",) or not (name == "input" or name.startswith(("conv-", "fc-"))):
            continue
        parts = name.split("-")
        kind = {"u": "u", "v": "v", "s": "spikes"}.get(parts[-1], "spikes") if len(parts) > 2 or name == "input" \
            else "spikes"
        if name == "input":
            kind = "spikes"
        g = _group_for(name, groups)
        shape = program.groups[g].shape
        rec = np.load(path)
        t_rec = rec.shape[-1]
        n = min(steps, t_rec)
        ref = rec.reshape(shape + (t_rec,))[..., :n].astype(np.float64)
        ours_flat = {"spikes": result.spikes, "u": result.u, "v": result.v}[kind][g][sample][:n]
        ours = np.moveaxis(ours_flat.reshape((n,) + shape), 0, -1).astype(np.float64)
        if kind == "spikes":
            ours, ref = ours != 0, ref != 0
        if kind == "v" and name not in _NOT_COUNTED:
            spiked = np.moveaxis(result.spikes[g][sample][:n].reshape((n,) + shape), 0, -1) != 0
            ok = np.where(spiked, (ours == 0) & (ref == 128), ours == ref)
            rule = "equal; where the neuron spiked ours 0 (Lava's reset), recording 128"
        else:
            ok = ours == ref
            rule = "equal"
        axes = tuple(range(ok.ndim - 1))
        eq = int(np.all(ok, axis=axes).sum())
        counted = name not in _NOT_COUNTED
        if not counted:
            rule = "recorded differently (float, 25 entries): reported, not counted"
        rows.append(TraceRow(name, g, kind, n, eq, rule, counted))
    return rows


def pilotnet_exact(rows: List[TraceRow]) -> bool:
    """True when every counted array is equal at every recorded step (and at least one of each kind was
    compared)."""
    kinds = {r.kind for r in rows if r.counted}
    return bool(rows) and {"spikes", "u", "v"} <= kinds and all(r.exact for r in rows if r.counted)


def format_trace_table(rows: List[TraceRow]) -> str:
    """One line per array: group, kind, equal steps / steps, rule."""
    out = [f"{'array':10s} {'group':8s} {'kind':6s} {'equal':>7s}  rule"]
    for r in rows:
        out.append(f"{r.array:10s} {r.group:8s} {r.kind:6s} {r.equal_steps:>3d}/{r.steps:<3d}  "
                   f"{r.rule}{'' if r.counted else ' [not counted]'}")
    return "\n".join(out)
