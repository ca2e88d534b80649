"""The record format shared by the reference simulator and the Lava backend, and bit-exact comparison.

Layout: every per-step array is ``(batch, time, n)`` with ``n`` the group's flat size (C order of its shape);
spikes are uint8 0/1, ``u`` and ``v`` int32 exactly as Lava holds them (after the step's reset). Step ``t``
(0-based) is the state after the network has processed input column ``t``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

__all__ = ["SimResult", "Mismatch", "first_mismatch", "FIELDS"]

#: Compared fields, in the order they are checked within one step.
FIELDS = ("u", "v", "spikes")


@dataclass
class SimResult:
    """Result of :func:`toolchain.sim.reference.simulate` or :func:`toolchain.backends.lava.run_lava`.

    ``spikes``: group -> (B, T, n) uint8 (every recorded group, and always the output group when it spikes).
    ``u``, ``v``: group -> (B, T, n) int32 for the recorded groups (``v`` of a non-spiking output group is
    always there). ``output``: the output group's spikes, or its ``v`` when it does not spike (``output_kind``
    "spikes" or "v"). ``steps_run``: (B,) steps each sample ran; with early exit, records after a sample's
    exit are zero. ``backend``: "reference" or "lava". ``groups``: recorded groups in program order.
    """

    spikes: Dict[str, np.ndarray]
    u: Dict[str, np.ndarray]
    v: Dict[str, np.ndarray]
    output: np.ndarray
    output_group: str
    output_kind: str
    steps_run: np.ndarray
    backend: str = "reference"
    groups: List[str] = field(default_factory=list)

    @property
    def s(self) -> Dict[str, np.ndarray]:
        """Alias of :attr:`spikes`."""
        return self.spikes

    @property
    def batch(self) -> int:
        return int(self.output.shape[0])

    @property
    def steps(self) -> int:
        return int(self.output.shape[1])

    def accumulated_output(self) -> np.ndarray:
        """``Y = sum over steps of output``, (B, n) int64 (spike counts, or summed ``v`` for a readout)."""
        return self.output.astype(np.int64).sum(axis=1)

    def first_mismatch(self, other: "SimResult", fields: Sequence[str] = FIELDS) -> Optional["Mismatch"]:
        """The earliest difference from ``other`` (see :func:`first_mismatch`), or None when bit-exact."""
        return first_mismatch(self, other, fields)

    def save_npz(self, path, record: bool = False) -> None:
        """Write ``spikes`` (the output group's spikes, or its ``v`` for a readout), ``steps_run`` and, with
        ``record``, ``spikes/<group>``, ``u/<group>``, ``v/<group>`` of every recorded group.

        Written to a temporary file and renamed, so a failure never leaves a partial file; errors name ``path``
        (not the temporary file)."""
        import os
        from pathlib import Path

        from ..errors import ToolchainError
        arrays = {"spikes": self.output, "steps_run": self.steps_run}
        if record:
            for kind in ("spikes", "u", "v"):
                for g, a in getattr(self, kind).items():
                    arrays[f"{kind}/{g}"] = a
        path = Path(path)
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise ToolchainError(f"the folder '{parent}' does not exist", file=str(path), field="output")
        if path.is_dir():
            raise ToolchainError("is a folder; give a file name such as OUT.npz", file=str(path), field="output")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
        try:
            try:
                np.savez_compressed(tmp, **arrays)
                os.replace(tmp, path)
            except OSError as exc:
                raise ToolchainError(f"cannot write: {exc.strerror or exc}", file=str(path), field="output") from None
        finally:
            if tmp.exists():
                tmp.unlink()


@dataclass(frozen=True)
class Mismatch:
    """The first difference between two records: ``field`` ("u", "v", "spikes" or "steps_run") of neuron
    ``neuron`` (flat index) of ``group`` at 0-based ``step`` of batch sample ``sample``; ``a``/``b`` the values."""

    group: str
    neuron: int
    step: int
    field: str
    sample: int
    a: int
    b: int
    #: True when ``field`` of ``group`` is recorded by only one side (``a``/``b``: 1 where recorded)
    missing: bool = False

    def __str__(self) -> str:
        if self.missing:
            return (f"'{self.field}' of layer '{self.group}' is recorded by only one side "
                    f"(first: {'yes' if self.a else 'no'}, second: {'yes' if self.b else 'no'})")
        if self.field == "steps_run":
            return f"steps_run of sample {self.sample}: {self.a} != {self.b}"
        return (f"layer '{self.group}', neuron {self.neuron}, step {self.step}, field '{self.field}', "
                f"sample {self.sample}: {self.a} != {self.b}")


def _ordered_groups(a: SimResult, b: SimResult) -> List[str]:
    order: List[str] = []
    for g in (list(a.groups) + list(b.groups) + list(a.spikes) + list(b.spikes) + list(a.u) + list(b.u)
              + list(a.v) + list(b.v)):
        if g not in order:
            order.append(g)
    return order


def first_mismatch(a: SimResult, b: SimResult, fields: Iterable[str] = FIELDS) -> Optional[Mismatch]:
    """Compare every recorded spike, ``u`` and ``v`` (and the output, and ``steps_run``); return the mismatch at
    the earliest step (ties: program order of groups, then u, v, spikes, then neuron, then sample), or None when
    they are bit-identical. A group/field recorded by one side only is a mismatch (``missing=True``, reported
    first): what one backend did not record was not shown to agree."""
    if a.output.shape != b.output.shape:
        raise ValueError(f"records have different shapes: {a.output.shape} vs {b.output.shape}")
    sr = np.flatnonzero(np.asarray(a.steps_run) != np.asarray(b.steps_run))
    if sr.size:
        i = int(sr[0])
        return Mismatch(a.output_group, -1, -1, "steps_run", i, int(a.steps_run[i]), int(b.steps_run[i]))
    best: Optional[Mismatch] = None
    best_key = None
    fields = tuple(fields)
    groups = _ordered_groups(a, b)
    for g in groups:
        for f in fields:
            da, db = getattr(a, f), getattr(b, f)
            if (g in da) != (g in db):
                return Mismatch(g, -1, -1, f, -1, int(g in da), int(g in db), missing=True)
    for gi, g in enumerate(groups):
        for fi, f in enumerate(fields):
            da, db = getattr(a, f), getattr(b, f)
            if g not in da:
                continue
            xa, xb = np.asarray(da[g]), np.asarray(db[g])
            if xa.shape != xb.shape:
                raise ValueError(f"'{f}' of group '{g}' has shapes {xa.shape} and {xb.shape}")
            diff = xa.astype(np.int64) != xb.astype(np.int64)
            if not diff.any():
                continue
            bi, ti, ni = np.nonzero(diff)
            k = np.lexsort((bi, ni, ti))[0]  # earliest step, then neuron, then sample
            key = (int(ti[k]), gi, fi, int(ni[k]), int(bi[k]))
            if best_key is None or key < best_key:
                best_key = key
                best = Mismatch(g, int(ni[k]), int(ti[k]), f, int(bi[k]), int(xa[bi[k], ti[k], ni[k]]),
                                int(xb[bi[k], ti[k], ni[k]]))
    if best is None and not np.array_equal(a.output.astype(np.int64), b.output.astype(np.int64)):
        bi, ti, ni = np.nonzero(a.output.astype(np.int64) != b.output.astype(np.int64))
        k = np.lexsort((bi, ni, ti))[0]
        best = Mismatch(a.output_group, int(ni[k]), int(ti[k]), "output", int(bi[k]),
                        int(a.output[bi[k], ti[k], ni[k]]), int(b.output[bi[k], ti[k], ni[k]]))
    return best
