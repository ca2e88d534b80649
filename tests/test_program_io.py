"""Program.save / Program.load: exact round trip, versioned format, atomic writes."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from toolchain.compile import compile_graph
from toolchain.errors import ToolchainError
from toolchain.ir import Csr, Delay, Graph, Linear, Structured
from toolchain.program import Program, programs_equal
from toolchain.testing import random_lif_graph

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nir-paper"


def _mixed_program(partition: bool = True) -> Program:
    """Dense, Csr and Structured synapses, a recurrent group, a split delay group, a placement."""
    rng = np.random.default_rng(5)
    g = random_lif_graph([20, 30, 10], seed=1, recurrent=True)
    nodes = dict(g.nodes)
    nodes["fc1"] = Linear("fc1", weight=Structured(rng.normal(0, 3, (10, 30)), row_mask=rng.random(10) < 0.8,
                                                   col_mask=rng.random(30) < 0.7))
    nodes["fc0"] = Linear("fc0", weight=Csr.from_dense(rng.normal(0, 3, (30, 20)) * (rng.random((30, 20)) < 0.3)))
    nodes["d"] = Delay("d", delay=np.array([1, 2] * 10) * 1e-3, shape=(20,))
    edges = [(e.src, e.dst) for e in g.edges if (e.src, e.dst) != ("input", "fc0")] + [("input", "d"), ("d", "fc0")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_graph(Graph(nodes, edges, dt=1e-3), "loihi2", partition=partition)


def test_round_trip_is_exact(tmp_path):
    p = _mixed_program()
    kinds = {s.weight.kind for s in p.synapses}
    assert kinds >= {"dense", "csr", "structured"} and any(s.recurrent for s in p.synapses)
    assert any("@d" in s.name for s in p.synapses)
    out = p.save(tmp_path / "build")
    assert sorted(x.name for x in out.iterdir()) == ["arrays.npz", "program.json"]
    q = Program.load(out)
    assert programs_equal(p, q)
    for a, b in zip(p.synapses, q.synapses):
        assert type(a.weight) is type(b.weight) and a.weight == b.weight and a.weight.dtype == b.weight.dtype
    for name, g in p.groups.items():
        for f in ("du", "dv", "vth", "bias_mant", "bias_exp"):
            assert getattr(q.groups[name], f).dtype == getattr(g, f).dtype
            np.testing.assert_array_equal(getattr(q.groups[name], f), getattr(g, f))
    for name, co in p.placement.core_of.items():
        np.testing.assert_array_equal(q.placement.core_of[name], co)
    assert q.placement.cores == p.placement.cores
    assert q.report == json.loads(json.dumps(p.report)) and q.metadata["latency_steps"] == p.metadata["latency_steps"]
    assert not programs_equal(p, _mixed_program(partition=False))


def test_round_trip_of_a_nir_paper_model(tmp_path):
    f = DATA / "braille_noDelay_noBias_subtract.nir"
    if not f.exists():
        pytest.skip(f"NIR paper data not found at {DATA}")
    from toolchain.compile import compile_file
    p = compile_file(f, "loihi2", dt=1e-4, reset="subtract")
    q = Program.load(p.save(tmp_path / "b"))
    assert programs_equal(p, q)
    assert q.groups["lif1.lif"].reset_mode == "subtract"


def test_unpartitioned_program_round_trips(tmp_path):
    p = _mixed_program(partition=False)
    assert p.placement is None
    assert programs_equal(p, Program.load(p.save(tmp_path / "q")))


def test_save_replaces_a_build_but_refuses_other_directories(tmp_path):
    p, p2 = _mixed_program(), _mixed_program(partition=False)
    build = tmp_path / "build"
    p.save(build)
    p2.save(build)  # replacing an earlier build is fine
    assert programs_equal(Program.load(build), p2)
    other = tmp_path / "mydata"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ToolchainError, match="refusing") as ei:
        p.save(other)
    assert ei.value.file == str(other)
    assert sorted(x.name for x in other.iterdir()) == ["notes.txt"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ToolchainError, match="not a directory"):
        p.save(afile)
    assert afile.read_text() == "x"


def test_failed_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    import toolchain.build_io as bio
    p, p2 = _mixed_program(), _mixed_program(partition=False)
    build = tmp_path / "build"
    p.save(build)
    before = sorted(x.name for x in tmp_path.iterdir())
    real = bio._write_file

    def boom(path, data):  # a disk that fills up half-way through the file
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError(28, "disk full")
    monkeypatch.setattr(bio, "_write_file", boom)
    with pytest.raises(OSError, match="disk full"):
        p2.save(build)
    with pytest.raises(OSError):
        p2.save(tmp_path / "fresh")
    assert sorted(x.name for x in tmp_path.iterdir()) == before  # no temp dirs, no partial "fresh", no lock
    assert sorted(x.name for x in build.iterdir()) == ["arrays.npz", "program.json"]  # no temp files inside
    monkeypatch.undo()
    assert programs_equal(Program.load(build), p)  # the old build is intact

    calls = []

    def second_fails(path, data):  # the arrays are replaced, then writing program.json fails
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "disk full")
        real(path, data)
    monkeypatch.setattr(bio, "_write_file", second_fails)
    with pytest.raises(OSError):
        p2.save(build)
    monkeypatch.undo()
    with pytest.raises(ToolchainError, match="does not match this program.json"):  # detected, not mixed silently
        Program.load(build)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ToolchainError, match="not a program build") as ei:
        Program.load(tmp_path)
    assert ei.value.file == str(tmp_path)
    build = _mixed_program().save(tmp_path / "b")
    doc = json.loads((build / "program.json").read_text())
    doc["version"] = 99
    (build / "program.json").write_text(json.dumps(doc))
    with pytest.raises(ToolchainError, match="version 99") as ei:
        Program.load(build)
    assert ei.value.file == str(build / "program.json")
    (build / "program.json").write_text("{not json")
    with pytest.raises(ToolchainError, match="cannot read"):
        Program.load(build)
    build2 = _mixed_program().save(tmp_path / "c")
    (build2 / "arrays.npz").unlink()
    with pytest.raises(ToolchainError, match="missing") as ei:
        Program.load(build2)
    assert ei.value.file.endswith("arrays.npz")
