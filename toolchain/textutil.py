"""Plain-text tables for reports, the CLI and the benchmarks (one place, so every table looks alike)."""
from __future__ import annotations

from typing import List, Sequence

__all__ = ["table_lines"]


def table_lines(rows: Sequence[Sequence[str]]) -> List[str]:
    """``rows[0]`` is the header: columns left-aligned to their widest cell, two spaces apart, a rule of dashes
    under the header, trailing blanks stripped."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
