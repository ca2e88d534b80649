"""Provenance of benchmark results: who ran what, when, with which settings, and how re-printed results are marked.

Every benchmark that saves a JSON stores ``run_info(settings)`` under ``"run"``: UTC date, git commit (and whether
the tree had uncommitted changes to tracked files), command line, Python/torch/numpy versions, CPU count and the
settings (seeds included). ``reprint_banner`` is the line a script prints before re-printing a saved run's
RESULT lines, and ``result_line`` appends ``(re-printed from FILE, run DATE)`` to each of them.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

__all__ = ["run_info", "reprint_banner", "result_line", "load_saved_run", "RESULTS_DIR"]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_info(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The record saved beside a benchmark's results (see the module docstring)."""
    versions: Dict[str, str] = {"python": platform.python_version()}
    for mod in ("torch", "numpy", "scipy"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    return {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": _git("rev-parse", "HEAD") or "unknown",
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "argv": list(sys.argv), "cpus": os.cpu_count(), "host": platform.node(),
            "versions": versions, "settings": settings}


def reprint_banner(path: Path, run: Optional[Dict[str, Any]]) -> str:
    """The header line printed before results re-printed from a saved JSON."""
    run = run or {}
    commit = str(run.get("git_commit", "?"))[:12]
    return (f"RE-PRINTED from {path} — run {run.get('date_utc', '?')} at commit {commit}"
            f"{' (uncommitted changes)' if run.get('git_dirty') else ''}; nothing was re-measured")


def load_saved_run(path: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Read a saved benchmark JSON for ``--from-json``, print :func:`reprint_banner` and return ``(saved,
    reprint)``: the stored data and the ``reprint`` record :func:`result_line` marks re-printed lines with."""
    import json
    path = Path(path)
    saved = json.loads(path.read_text())
    print(reprint_banner(path, saved.get("run")))
    return saved, dict(saved.get("run") or {}, _file=str(path))


def result_line(name: str, value: str, reprint: Optional[Dict[str, Any]] = None) -> str:
    """``RESULT name value``, with ``(re-printed from FILE, run DATE)`` appended when ``reprint`` is the saved run."""
    line = f"RESULT {name} {value}"
    if reprint is not None:
        line += f"  (re-printed from {reprint.get('_file', '?')}, run {reprint.get('date_utc', '?')})"
    return line
