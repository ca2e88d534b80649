"""benchmarks/sca.py --merge: runs of the same settings made in parallel processes become one result, with every
model kept, the plan of the first file, each file's provenance, and refusals that name the file."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SHIPPED = BENCH / "results" / "sca_quick.json"  # a finished --quick run: 3 seeds x (dense, SCA-0.75, magnitude)


@pytest.fixture
def sca_bench(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCH))
    import common.provenance as prov
    import sca
    monkeypatch.setattr(prov, "RESULTS_DIR", tmp_path / "results")  # never the shipped file
    return sca


def _split(tmp_path: Path):
    blob = json.loads(SHIPPED.read_text())
    a, b = copy.deepcopy(blob), copy.deepcopy(blob)
    a["rows"] = [r for r in blob["rows"] if r["seed"] in (0, 1)]
    b["rows"] = [r for r in blob["rows"] if r["seed"] == 2]
    b["config"]["seeds"] = [2]
    b["run"]["date_utc"] = "2026-12-04T12:00:00Z"
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    return blob, a, b, pa, pb


def test_merge_of_per_seed_runs_equals_the_single_run(tmp_path, sca_bench, capsys):
    blob, _, _, pa, pb = _split(tmp_path)
    assert sca_bench.main(["--merge", str(pa), str(pb), "--out", str(tmp_path / "out")]) == 0
    merged = json.loads((tmp_path / "results" / "sca_quick.json").read_text())
    assert merged["partial"] is None
    assert merged["rows"] == blob["rows"]  # every model, in the plan's order
    for model, fig in blob["summary"].items():  # the means over seeds of the single run
        assert merged["summary"][model] == pytest.approx(fig, nan_ok=True), model
    src = merged["config"]["merged_from"]
    assert [m["file"] for m in src] == [str(pa), str(pb)]
    assert src[1]["models"] == ["dense_seed2", "sca-0.75_seed2", "magnitude_seed2"]
    assert "RESULT sca_acc_drop_points" in capsys.readouterr().out

    # the first file alone: marked partial, the missing models named
    assert sca_bench.main(["--merge", str(pa), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "3 of the 9 planned missing" in out and "magnitude seed 2" in out and "PARTIAL RUN" in out
    assert json.loads((tmp_path / "results" / "sca_quick.json").read_text())["partial"] == \
        {"models_done": 6, "models_planned": 9}


def test_merge_refuses_other_settings_and_conflicting_models(tmp_path, sca_bench):
    _, _, b, pa, pb = _split(tmp_path)
    other = copy.deepcopy(b)
    other["config"]["epochs"] += 1
    (tmp_path / "c.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match=r"c\.json: settings differ .* in epochs"):
        sca_bench.main(["--merge", str(pa), str(tmp_path / "c.json")])
    clash = copy.deepcopy(b)
    clash["rows"][0]["acc"] += 0.01
    clash["rows"][0]["seed"] = 0  # a second, different dense seed 0
    (tmp_path / "d.json").write_text(json.dumps(clash))
    with pytest.raises(SystemExit, match=r"d\.json: dense seed 0 differs"):
        sca_bench.main(["--merge", str(pa), str(tmp_path / "d.json")])
    with pytest.raises(SystemExit, match="cannot read"):
        sca_bench.main(["--merge", str(tmp_path / "missing.json")])
    assert not (tmp_path / "results").exists()  # nothing written on a refusal
