"""``snnc demo``: the end-to-end run (train with STOP-WTL, NIR, compile, reference / IntegerNet / Lava, report)."""
from __future__ import annotations

import json
import re

import pytest

from toolchain.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


def _results(text: str) -> dict:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^RESULT (\S+) (\S+)$", text, re.M)}


def _check_files(out, results):
    from toolchain import nir_io
    from toolchain.program import Program

    assert (out / "raster.png").read_bytes()[:8] == PNG
    assert (out / "training_curve.png").read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    assert summary["float_acc"] == pytest.approx(results["float_acc"], abs=1e-4)
    assert summary["int_acc"] == pytest.approx(results["int_acc"], abs=1e-4)
    assert summary["bit_exact"] == bool(results["bit_exact"])
    graph = nir_io.load(summary["files"]["nir"])
    assert graph.summary()  # a readable NIR file with the trained network
    prog = Program.load(summary["files"]["program"])
    assert prog.neuron_count == summary["config"]["hidden"] + 10
    assert summary["synops_per_inference"] > 0
    assert len(summary["history"]["epochs"]) == summary["config"]["epochs"]
    return summary


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    # --qat always: the quantisation-aware fine-tuning path runs too (the full demo only uses it when needed)
    rc = main(["demo", "--quick", "--epochs", "1", "--lava-samples", "1", "--qat", "always", "--out", str(tmp_path),
               "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    results = _results(text)
    assert list(results) == ["float_acc", "int_acc", "bit_exact"]  # in this order, at the end
    assert text.rstrip().splitlines()[-1].startswith("RESULT bit_exact")
    assert results["bit_exact"] == 1.0
    assert 0.5 < results["float_acc"] <= 1.0 and 0.5 < results["int_acc"] <= 1.0
    assert abs(results["int_acc"] - results["float_acc"]) <= 0.1
    assert "cores used" in text and "synaptic operations per inference" in text
    assert "IntegerNet vs reference on 450 samples: yes" in text
    summary = _check_files(tmp_path, results)
    assert summary["test_samples"] == 450 and summary["lava_samples"] == 1
    assert summary["qat"] is True and summary["files"]["nir"].endswith("_qat.nir")
    assert "quantisation-aware fine-tuning" in text


def test_demo_rejects_bad_options(tmp_path, capsys):
    rc = main(["demo", "--epochs", "0", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error:") and "epochs" in err
    assert not (tmp_path / "x").exists()  # nothing written for a bad request


@pytest.mark.slow
def test_full_demo_meets_the_targets(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    results = _results(text)
    assert results["float_acc"] >= 0.97
    assert results["int_acc"] >= results["float_acc"] - 0.005 - 1e-9  # within 0.5 points (or better)
    assert results["bit_exact"] == 1.0
    _check_files(tmp_path, results)
