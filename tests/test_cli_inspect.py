"""``snnc inspect``: the report on good files, one ``error:`` line and exit 1 on bad ones."""
from pathlib import Path

import h5py
import numpy as np
import pytest

from toolchain.cli.main import main
from toolchain.nir_io import export
from toolchain.testing import graph_every_node_type

PAPER = Path(__file__).resolve().parents[2] / "shared" / "data" / "nir-paper"
REPO = Path(__file__).resolve().parents[1]


def paper(name):
    if not (PAPER / name).exists():
        pytest.skip(f"NIR-paper data folder not found at {PAPER}")
    return str(PAPER / name)


def test_inspect_braille_shows_recurrent_network(capsys):
    rc = main(["inspect", paper("braille_noDelay_bias_zero.nir"), "--preset", "snntorch", "--reset", "zero"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    assert "network: 12 -> 38 (recurrent) -> 7" in out
    assert "recurrent edge lif1.w_rec -> lif1.lif" in out
    assert "45 neurons" in out and "2166 synapses" in out
    assert "preset: snntorch, dt: 0.0001 s, reset: zero" in out
    lines = out.splitlines()
    table = [ln.split()[0] for ln in lines[lines.index(next(ln for ln in lines if ln.startswith("node "))) + 2:]
             if ln and not ln.startswith(" ")]
    assert table[:7] == ["input", "fc1", "lif1.lif", "lif1.w_rec", "fc2", "lif2", "output"]  # topological order
    assert "lif1.lif (CubaLIF): tau_syn 0.0002222 s, tau_mem 0.001 s" in out
    assert "v_threshold 1" in out and "fc1 (Affine): weight -5.7..1.039" in out
    assert "warnings: none" in out


def test_inspect_nested_file_lists_warnings(capsys):
    rc = main(["inspect", paper("braille_noDelay_bias_zero_subgraph.nir"), "--dt", "1e-4"])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "network: 12 -> 38 (recurrent) -> 7" in out and "read with: h5py" in out
    assert "warnings (2):" in out and "resolved to 'lif1'" in out


def test_inspect_cnn(capsys):
    assert main(["inspect", paper("cnn_sinabs.nir")]) == 0
    out, _ = capsys.readouterr()
    assert "network: 2x34x34 -> 16x16x16 -> 16x16x16 -> 8x8x8 -> 256 -> 10" in out
    assert "SumPool2d" in out and "Flatten" in out and "dt: not set" in out


def test_inspect_sparsity_and_all_node_types(tmp_path, capsys):
    export(graph_every_node_type(seed=0), tmp_path / "g.nir")
    assert main(["inspect", str(tmp_path / "g.nir")]) == 0
    out, _ = capsys.readouterr()
    for kind in ("Conv1d", "Conv2d", "AvgPool2d", "Delay", "Threshold", "Integrator", "CubaLI ", "Scale"):
        assert kind in out
    assert "delay 0..0.003 s" in out or "delay 0" in out


def test_inspect_warnings_section(tmp_path, capsys):
    import nir
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([1])),
                            "n": nir.LIF(tau=np.array([5e-6]), r=np.ones(1), v_leak=np.zeros(1),
                                         v_threshold=np.array([-1.0])),
                            "out": nir.Output(np.array([1]))}, edges=[("in", "n"), ("n", "out")], type_check=False)
    nir.write(tmp_path / "w.nir", g)
    assert main(["inspect", str(tmp_path / "w.nir"), "--dt", "1e-3"]) == 0
    out, err = capsys.readouterr()
    assert "warnings (" in out and "below dt" in out and "threshold ≤ 0" in out
    assert err == ""


@pytest.mark.parametrize("setup, expect", [
    ("missing", "no such file"),
    ("text", "not an HDF5 file"),
    ("unsupported", "node 'x', field 'type'"),
])
def test_inspect_bad_input_one_error_line(tmp_path, capsys, setup, expect):
    path = tmp_path / "f.nir"
    if setup == "text":
        path.write_text("hello")
    elif setup == "unsupported":
        with h5py.File(path, "w") as f:
            n = f.create_group("node")
            n.create_dataset("type", data=b"NIRGraph")
            n.create_dataset("edges", data=np.array([[b"in", b"x"]], dtype=object), dtype=h5py.string_dtype())
            nodes = n.create_group("nodes")
            i = nodes.create_group("in")
            i.create_dataset("type", data=b"Input")
            i.create_dataset("shape", data=np.array([2]))
            x = nodes.create_group("x")
            x.create_dataset("type", data=b"Spiral")
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(["inspect", str(path)])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]
    assert f"file '{path}'" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_inspect_bad_option_is_usage_error(capsys):
    assert main(["inspect", "x.nir", "--preset", "brian"]) == 2


def test_demo_graph_shipped_and_reproducible(tmp_path, capsys):
    shipped = REPO / "examples" / "data" / "demo_recurrent.nir"
    assert shipped.exists(), "make demo needs examples/data/demo_recurrent.nir (examples/make_demo_graph.py)"
    assert main(["inspect", str(shipped)]) == 0
    out, _ = capsys.readouterr()
    assert "network: 16 -> 24 (recurrent) -> 5" in out
    import runpy
    mod = runpy.run_path(str(REPO / "examples" / "make_demo_graph.py"))
    assert mod["main"](["x", str(tmp_path / "demo.nir")]) == 0
    from toolchain.nir_io import load
    assert load(tmp_path / "demo.nir") == load(shipped)


def test_make_demo_graph_help_and_no_silent_overwrite(tmp_path):
    """``--help`` prints usage and writes nothing; no argument writes nothing (the shipped file is only
    rewritten when its path is given)."""
    import subprocess
    import sys
    shipped = REPO / "examples" / "data" / "demo_recurrent.nir"
    before = shipped.read_bytes()
    script = str(REPO / "examples" / "make_demo_graph.py")
    r = subprocess.run([sys.executable, script, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "usage:" in r.stdout and list(tmp_path.iterdir()) == []
    r = subprocess.run([sys.executable, script], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "OUT.nir" in r.stderr and list(tmp_path.iterdir()) == []
    r = subprocess.run([sys.executable, script, "out.txt"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and list(tmp_path.iterdir()) == []
    assert shipped.read_bytes() == before


def test_source_dt_decodes_norse_time_constants_independently_of_dt(tmp_path, capsys):
    """``--source-dt`` (the dt Norse simulated with) scales the decoded tau; the target ``--dt`` does not; compile
    takes it too."""
    f = paper("lif_norse.nir")
    taus = []
    for sd in ("1e-3", "1e-4"):
        assert main(["inspect", f, "--preset", "norse", "--dt", "1e-4", "--source-dt", sd]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if "(LIF): tau" in ln)
        taus.append(float(line.split("tau ")[1].split(" s")[0]))
    assert taus[1] == pytest.approx(10 * taus[0])
    assert main(["inspect", f, "--preset", "norse", "--dt", "1e-3", "--source-dt", "1e-3"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "(LIF): tau" in ln)
    assert float(line.split("tau ")[1].split(" s")[0]) == pytest.approx(taus[0])
    assert main(["compile", f, "--preset", "norse", "--dt", "1e-4", "--source-dt", "1e-4", "-o",
                 str(tmp_path / "b")]) == 0
