"""Shared plotting helpers: a headless pyplot and one way to write a figure as PNG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (works without a display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: Union[str, os.PathLike], dpi: int = 120) -> Path:
    """Lay out ``fig``, write it to ``path`` (parent folders created) and close it; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
    return out
