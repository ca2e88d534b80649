"""``snnc deploy``: the folder for a Loihi 2 system, and its standalone ``run.py`` run on the CPU.

The generated ``run.py`` is executed in a subprocess (``Loihi2SimCfg(select_tag="fixed_pt")``: no lava-loihi
here) on a default netx build of a feed-forward LIF network and on a netx program fed through its input layer's
bias, and its output spikes (and, with ``--record``, every layer's spikes, ``u`` and ``v``) must equal
:func:`toolchain.sim.reference.simulate` on the same input at every step. Both folders run in ONE subprocess
(lava-dl imports torch: the import dominates). Refusals (foreign non-empty folder, a file in the way, a Program netx
cannot hold) must leave nothing written.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

pytest.importorskip("h5py")

from toolchain.backends.deploy import (DEPLOY_FORMAT, RUN_SCRIPT, DeployError, deploy,  # noqa: E402
                                       program_sha256, reference_output)
from toolchain.backends.netx import check_netx  # noqa: E402
from toolchain.compile import compile_graph  # noqa: E402
from toolchain.errors import ToolchainError  # noqa: E402
from toolchain.program import Program  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import int_program, random_lif_graph  # noqa: E402


# ------------------------------------------------------------------------------------------------ programs
def feed_forward_program() -> Program:
    """A small feed-forward LIF network compiled for netx with the compiler's defaults (``compile_for_netx``
    chooses what netx can hold); plain ``compile_graph(vth_max=256, align_bias=False)`` where it is missing."""
    graph = random_lif_graph((16, 12, 6), seed=1, storage="csr", density=0.6)
    try:
        from toolchain.backends.netx import compile_for_netx
    except ImportError:  # pragma: no cover - older exporter
        return compile_graph(graph, "loihi2", vth_max=256, align_bias=False)
    return compile_for_netx(graph, "loihi2")


def _neuron(h, vth: int, i_decay: int, v_decay: int) -> None:
    n = h.create_group("neuron")
    n.create_dataset("type", (1,), "S10", [b"CUBA"])
    for key, val in (("iDecay", i_decay), ("vDecay", v_decay), ("vThMant", vth), ("refDelay", 1)):
        n.create_dataset(key, data=np.int32(val))
    n.create_dataset("gradedSpike", data=False)


def write_bias_net(path: Path) -> Path:
    """A lava-dl netx file like PilotNet's front: an input layer with neurons (4 x 2 x 3, driven by its bias),
    flatten, dense 24 -> 10, dense 10 -> 4."""
    import h5py
    r = np.random.default_rng(5)
    with h5py.File(path, "w") as f:
        lay = f.create_group("layer")
        h = lay.create_group("0")
        h.create_dataset("type", (1,), "S10", [b"input"])
        h.create_dataset("shape", data=np.array([3, 2, 4]))  # netx stores (C, H, W)
        _neuron(h, vth=40, i_decay=4096, v_decay=1024)
        lay.create_group("1").create_dataset("type", (1,), "S10", [b"flatten"])
        for i, (n_out, n_in, vth) in enumerate(((10, 24, 30), (4, 10, 20)), start=2):
            h = lay.create_group(str(i))
            h.create_dataset("type", (1,), "S10", [b"dense"])
            h.create_dataset("shape", data=np.array([n_out]))
            h.create_dataset("weight", data=r.integers(-50, 110, size=(n_out, n_in)).astype(np.int32))
            _neuron(h, vth=vth, i_decay=1024, v_decay=512)
    return path


def bias_program(tmp: Path) -> Program:
    """The netx file above as a Program (bias input port, lava-dl's reset every 8 steps)."""
    from toolchain.netx_io import load_netx
    return load_netx(write_bias_net(tmp / "bias.net"), reset_interval=8)


# --------------------------------------------------------------------------------------- the run.py runs
DRIVER = r"""
import json, runpy, sys
jobs = json.loads(sys.argv[1])
codes = {}
for name, (script, args) in jobs.items():
    sys.argv = [script] + args
    try:
        runpy.run_path(script, run_name="__main__")
        codes[name] = 0
    except SystemExit as exc:
        codes[name] = exc.code if isinstance(exc.code, int) else 1
codes["toolchain_imported"] = sorted(m for m in sys.modules if m == "toolchain" or m.startswith("toolchain."))
print("DRIVER " + json.dumps(codes))
"""


def run_scripts(jobs: Dict[str, tuple]) -> dict:
    """Run each folder's run.py (``jobs``: name -> (folder, args)) in one fresh Python process; returns exit
    codes, the modules of our toolchain imported there (must be none) and the output."""
    spec = {k: (str(Path(d) / "run.py"), list(a)) for k, (d, a) in jobs.items()}
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec)], capture_output=True, text=True,
                          timeout=900, env=env, cwd=str(next(iter(jobs.values()))[0]))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DRIVER ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(lines[-1][len("DRIVER "):])
    res["stdout"], res["stderr"] = proc.stdout, proc.stderr
    return res


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Deploy both programs with a two-sample input each, then run both folders' run.py (default sample, so
    run.py also checks itself against the shipped reference output) with --record on the CPU."""
    import importlib.util
    if importlib.util.find_spec("lava.lib.dl.netx") is None:  # (not imported here: it pulls in torch)
        pytest.skip("lava-dl (netx) is not installed")
    tmp = tmp_path_factory.mktemp("deploy")
    cases = {}
    ff = feed_forward_program()
    x_ff = (np.random.default_rng(2).random((2, 14, 16)) < 0.35).astype(np.uint8)
    cases["ff"] = (ff, x_ff, deploy(ff, tmp / "ff", sample_input=x_ff))
    bp = bias_program(tmp)
    bias_reason = None
    try:
        check_netx(bp)
    except ToolchainError as exc:  # pragma: no cover - the exporter before bias inputs
        bias_reason = f"export_netx cannot hold a bias-input program yet: {exc}"
    if bias_reason is None:
        x_b = np.random.default_rng(3).integers(0, 90, size=(2, 4, 2, 3))
        cases["bias"] = (bp, x_b, deploy(bp, tmp / "bias", sample_input=x_b))
    jobs = {k: (out, ["--backend", "cpu", "--record", "--out", str(out / "output.npz")])
            for k, (_, _, out) in cases.items()}
    result = run_scripts(jobs)
    return cases, result, bias_reason


def _load(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_run_script_feed_forward_bit_exact(runs) -> None:
    """run.py on Loihi2SimCfg: output spikes, and every layer's spikes/u/v, equal the reference simulator at
    every step of both samples (fresh mode: a new network per sample, as simulate runs a batch)."""
    cases, result, _ = runs
    program, x, out = cases["ff"]
    assert result["ff"] == 0, result["stderr"][-3000:]
    assert result["toolchain_imported"] == []  # run.py is standalone
    got = _load(out / "output.npz")
    ref = simulate(program, x, record=True)
    assert str(got["mode"]) == "fresh" and str(got["backend"]).startswith("cpu")
    assert got["spikes"].shape == (2, 14, 6)
    assert np.array_equal(got["spikes"], ref.output), "output spikes differ from the reference simulator"
    assert np.array_equal(got["steps_run"], [14, 14])
    for g in program.groups:
        for kind in ("spikes", "u", "v"):
            want = getattr(ref, kind)[g]
            bad = np.argwhere(got[f"{kind}/{g}"].astype(np.int64) != want.astype(np.int64))
            assert bad.size == 0, f"{kind}/{g}: first mismatch at (sample, step, neuron) {tuple(bad[0])}"
    assert ref.output.any(), "the test network must spike"
    assert "bit-exact: yes" in result["stdout"]  # the shipped reference, compared by run.py itself


def test_run_script_bias_input_bit_exact(runs) -> None:
    """A program fed through its input layer's bias (lava-dl's PilotNet way) with reset_interval 8: run.py
    sets ``bias_mant`` per sample and runs both samples back to back (continuous mode), which equals the
    reference simulator on the samples joined in time, at every step."""
    cases, result, reason = runs
    if reason:
        pytest.skip(reason)
    program, x, out = cases["bias"]
    assert result["bias"] == 0, result["stderr"][-3000:]
    man = json.loads((out / "deploy.json").read_text())
    assert man["input"]["kind"] == "bias" and man["reset"] == {**man["reset"], "interval": 8, "offset": 0}
    assert man["steps_per_sample"] == 8 and man["sample"]["mode"] == "continuous"
    got = _load(out / "output.npz")
    assert str(got["mode"]) == "continuous" and got["spikes"].shape == (2, 8, 4)
    joined = np.repeat(x[:, None], 8, axis=1).reshape((1, 16) + x.shape[1:])  # bias per step, samples joined
    ref = simulate(program, joined, record=True)
    assert np.array_equal(got["spikes"].reshape(1, 16, -1), ref.output), "output spikes differ"
    for g in program.groups:
        for kind in ("spikes", "u", "v"):
            want = getattr(ref, kind)[g].reshape(1, 16, -1)
            bad = np.argwhere(got[f"{kind}/{g}"].reshape(1, 16, -1).astype(np.int64) != want.astype(np.int64))
            assert bad.size == 0, f"{kind}/{g}: first mismatch at (sample, step, neuron) {tuple(bad[0])}"
    assert any(ref.spikes[g].any() for g in program.groups)
    assert np.array_equal(reference_output(program, x, 8)["spikes"], got["spikes"])


# ------------------------------------------------------------------------------------------ the folder
def test_folder_and_manifest(tmp_path: Path) -> None:
    """The folder's files, deploy.json's fields and hashes, and a standalone run.py (imports only the standard
    library, numpy and lava)."""
    program = feed_forward_program()
    out = deploy(program, tmp_path / "d", steps=12)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "deploy.json", "network.net",
                                                     "reference_output.npz", "run.py", "sample_input.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder or lock left behind
    man = json.loads((out / "deploy.json").read_text())
    assert man["format"] == DEPLOY_FORMAT and man["target"] == "loihi2"
    assert man["input"] == {**man["input"], "port": "input", "kind": "spikes", "shape": [16], "netx_shape": [16],
                            "range": [0, 1], "num_message_bits": 0}
    assert man["steps_per_sample"] == 12 and man["reset"]["interval"] == 0
    assert [lay["group"] for lay in man["layers"]] == list(program.groups)
    assert man["output"] == {**man["output"], "group": program.output, "kind": "spikes", "neurons": 6}
    assert man["latency_steps"] == 2  # two synapse layers
    assert man["program_sha256"] == program_sha256(program)
    import hashlib
    for name, sha in man["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha
    x = np.load(out / "sample_input.npy")
    assert x.shape == (1, 12, 16)
    assert np.array_equal(_load(out / "reference_output.npz")["spikes"], simulate(program, x).output)
    assert os.access(out / "run.py", os.X_OK)
    readme = (out / "README.md").read_text()
    assert "snnc simulate" in readme and "Loihi2HwCfg" in readme and "(batch, time, 16)" in readme
    tree = ast.parse(RUN_SCRIPT)
    roots = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
             for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert roots <= {"__future__", "argparse", "hashlib", "json", "os", "sys", "time", "zipfile", "pathlib",
                     "typing", "numpy", "lava"}, roots


def test_program_hash_survives_save_and_load(tmp_path: Path) -> None:
    program = feed_forward_program()
    program.save(tmp_path / "build")
    assert program_sha256(Program.load(tmp_path / "build")) == program_sha256(program)
    other = int_program((16, 12, 6), seed=9)
    assert program_sha256(other) != program_sha256(program)


def test_run_script_refuses_changed_folder_and_bad_input(tmp_path: Path) -> None:
    """Checks before Lava is imported (fast): a changed network.net, an input of the wrong shape or range."""
    out = deploy(feed_forward_program(), tmp_path / "d")
    np.save(tmp_path / "bad_shape.npy", np.zeros((2, 5, 15), np.uint8))
    np.save(tmp_path / "bad_range.npy", np.full((5, 16), 2, np.int32))

    def run(*args):
        return subprocess.run([sys.executable, str(out / "run.py"), "--backend", "cpu", *args],
                              capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    p = run("--input", str(tmp_path / "bad_shape.npy"))
    assert p.returncode == 1 and "expected spikes of shape (batch, time, 16)" in p.stderr, p.stderr
    p = run("--input", str(tmp_path / "bad_range.npy"))
    assert p.returncode == 1 and "values must lie in [0, 1]" in p.stderr, p.stderr
    with open(out / "network.net", "ab") as fh:
        fh.write(b"\0")
    p = run()
    assert p.returncode == 1 and "does not match deploy.json" in p.stderr, p.stderr
    assert not (tmp_path / "output.npz").exists()


# ------------------------------------------------------------------------------------------- refusals
def test_refuses_foreign_folder_and_file(tmp_path: Path) -> None:
    program = feed_forward_program()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DeployError) as exc:
        deploy(program, foreign)
    assert exc.value.field == "output" and "not written by snnc deploy" in str(exc.value)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DeployError, match="not a folder"):
        deploy(program, tmp_path / "afile")
    with pytest.raises(DeployError, match="does not exist"):
        deploy(program, tmp_path / "missing" / "d")
    with pytest.raises(DeployError) as exc:
        deploy(program, tmp_path / "d", target="loihi3")
    assert exc.value.field == "target"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_refuses_unexportable_program(tmp_path: Path) -> None:
    """A Program netx cannot hold gets the exporter's own error (layer and field named); nothing is written."""
    program = int_program((6, 5, 4), seed=0, reset_mode="subtract")
    with pytest.raises(ToolchainError) as exc:
        check_netx(program)
    want = (exc.value.node, exc.value.field)
    with pytest.raises(ToolchainError) as exc:
        deploy(program, tmp_path / "d")
    assert (exc.value.node, exc.value.field) == want == ("g0", "reset_mode")
    assert list(tmp_path.iterdir()) == []


def test_redeploy_replaces_only_our_files(tmp_path: Path) -> None:
    """A folder written by snnc deploy is updated in place: our files replaced, a user's output kept, a file of
    ours no longer written removed; a user file with the name of one of ours is not overwritten."""
    program = feed_forward_program()
    out = deploy(program, tmp_path / "d")
    (out / "output.npz").write_bytes(b"user result")
    first = (out / "deploy.json").read_text()
    deploy(program, out, steps=9, sample=False)
    assert (out / "output.npz").read_bytes() == b"user result"
    assert not (out / "sample_input.npy").exists() and not (out / "reference_output.npz").exists()
    man = json.loads((out / "deploy.json").read_text())
    assert man["steps_per_sample"] == 9 and man["sample"] is None and first != (out / "deploy.json").read_text()
    (out / "sample_input.npy").write_bytes(b"user sample")  # not ours any more: never overwritten
    with pytest.raises(DeployError, match="sample_input.npy"):
        deploy(program, out)
    assert (out / "sample_input.npy").read_bytes() == b"user sample"
    assert json.loads((out / "deploy.json").read_text())["steps_per_sample"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_cli_deploy(tmp_path: Path, capsys) -> None:
    """``snnc deploy BUILD --to loihi2 -o DIR``; an unexportable build and a foreign folder end in one error
    line with exit status 1 and nothing written."""
    from toolchain.cli.main import main
    program = feed_forward_program()
    program.save(tmp_path / "build")
    assert main(["deploy", str(tmp_path / "build"), "--to", "loihi2", "-o", str(tmp_path / "out"),
                 "--steps", "10"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "python run.py" in text
    man = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert man["program_sha256"] == program_sha256(program) and man["steps_per_sample"] == 10
    np.save(tmp_path / "x.npy", np.ones((3, 16), np.uint8))
    assert main(["deploy", str(tmp_path / "build"), "-o", str(tmp_path / "out"), "--sample",
                 str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "out" / "sample_input.npy").shape == (1, 3, 16)
    capsys.readouterr()

    int_program((6, 5, 4), seed=0, reset_mode="subtract").save(tmp_path / "bad")
    assert main(["deploy", str(tmp_path / "bad"), "-o", str(tmp_path / "out2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "field 'reset_mode'" in err and err.count("\n") == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("a")
    assert main(["deploy", str(tmp_path / "build"), "-o", str(tmp_path / "mine")]) == 1
    assert "not written by snnc deploy" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "build", "mine", "out", "x.npy"]
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["a.txt"]


# ------------------------------------------------------------------------------- Intel's PilotNet traces
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl" / "pilotnet_lif"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/lava-dl/pilotnet_lif is not present")
def test_pilotnet_deploy_folder_reproduces_intel_traces(tmp_path: Path) -> None:
    """PilotNet-LIF (netx in, netx out) deployed with Intel's frame as its sample, run by the folder's own run.py
    on Loihi2SimCfg with --record: every layer's spikes, u and v equal the reference simulator at every step, and
    the recorded u of conv 1-4 and fc 0-2 equal the states Intel's Loihi 2 hardware test requires (data README),
    at each of the 15 steps. About 12 minutes on two loaded cores (40 Lava processes)."""
    from toolchain.netx_io import load_netx
    program = load_netx(DATA / "network.net", reset_interval=16)
    image = np.load(DATA / "image.npy")
    out = deploy(program, tmp_path / "pilotnet", sample_input=image, steps=15)
    res = run_scripts({"pilot": (out, ["--backend", "cpu", "--record", "--out", str(out / "output.npz")])})
    assert res["pilot"] == 0 and "bit-exact: yes" in res["stdout"], res["stderr"][-3000:]
    got = _load(out / "output.npz")
    ref = simulate(program, image[None], steps=15, record=True)
    for g in program.groups:
        for kind in ("spikes", "u", "v"):
            assert np.array_equal(got[f"{kind}/{g}"], getattr(ref, kind)[g]), f"{kind}/{g}"
    names = list(program.groups)  # input0, conv1..conv5, dense7..dense10
    traces = [(names[k + 1], f"conv-{k}-u") for k in range(1, 5)] + [(names[k + 6], f"fc-{k}-u") for k in range(3)]
    for group, trace in traces:
        want = np.load(DATA / f"{trace}.npy")
        for t in range(15):
            assert np.array_equal(got[f"u/{group}"][0, t].reshape(want.shape[:-1]), want[..., t]), (trace, t)
