"""Issue 13: no input hangs the compiler, crashes it, eats the machine's memory or deletes a user's file.

Each case of the issue's list goes through the CLI (``toolchain.cli.main.main``, in-process, under a time guard)
and must end in exactly one ``error: ...`` line naming the file/node/field and the limit, exit status 1, nothing
written and nothing of the user's removed — or work, where working is what a user would expect.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli.main import main
from toolchain.testing import bad_nir_file

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "data" / "demo_recurrent.nir"


@contextlib.contextmanager
def time_guard(seconds: int):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``: a limit, not a timing."""
    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def snnc(capsys, *args, seconds: int = 60):
    """Run ``snnc ARGS``; returns (exit status, stdout, stderr)."""
    with time_guard(seconds):
        rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error(rc, err, *words):
    """Exit 1 and exactly one non-empty stderr line, ``error: ...``, holding every word."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert rc == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def listing(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A compiled demo build (compiled once; tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("b") / "demo"
    assert main(["compile", str(DEMO), "--dt", "1e-3", "-o", str(out)]) == 0
    return out


@pytest.fixture
def x_npy(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, (np.random.default_rng(0).random((2, 6, 16)) < 0.3).astype(np.int32))
    return p


# ------------------------------------------------------------------------------------------ hangs / memory
@pytest.mark.parametrize("kind,node", [("cycle", "'a'"), ("self_loop", "'fcs'")])
def test_cycle_without_neuron_is_refused_at_once(tmp_path, capsys, kind, node):
    f = bad_nir_file(tmp_path / f"{kind}.nir", kind)
    rc, _, err = snnc(capsys, "compile", f, "--dt", "1e-3", "-o", tmp_path / "b", seconds=30)
    assert_one_error(rc, err, f"file '{f}'", f"node {node}", "field 'edges'", "cycle with no neuron")
    assert "does not exist" not in err
    assert not (tmp_path / "b").exists()
    rc, out, _ = snnc(capsys, "inspect", f)  # inspect shows the file and names the defect
    assert rc == 0 and "will not compile" in out and "warnings: none" not in out


def test_header_declared_giant_weight_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    f = bad_nir_file(tmp_path / "huge.nir", "huge_weight")  # 1e6 x 1e3 float32 declared, never written
    rc, _, err = snnc(capsys, "compile", f, "--dt", "1e-3", "-o", tmp_path / "b", seconds=30)
    assert_one_error(rc, err, "node 'fc'", "field 'weight'", "compiling needs about", "(1000000, 1000)", "available")
    monkeypatch.setenv("SNNC_MEMORY_LIMIT", "1G")
    rc, _, err = snnc(capsys, "inspect", f, seconds=30)
    assert_one_error(rc, err, "node 'fc'", "field 'weight'", "reading this file needs", "SNNC_MEMORY_LIMIT")
    assert not (tmp_path / "b").exists()


def test_more_neurons_than_the_target_is_refused_before_reading(tmp_path, capsys):
    from toolchain.targets import load_target
    spec = load_target("loihi2")
    limit = spec.total_cores * spec.neurons_per_core
    f = bad_nir_file(tmp_path / "many.nir", "many_neurons", neurons=limit + 1)  # declared, never written
    rc, _, err = snnc(capsys, "compile", f, "--dt", "1e-3", "-o", tmp_path / "b", seconds=30)
    assert_one_error(rc, err, "node 'lif'", f"{limit + 1:,} neurons", f"at most {limit:,} neurons", "field 'cores'")


def test_graph_totals_checked_before_any_pass(monkeypatch):
    import dataclasses

    from toolchain.compile import compile_graph
    from toolchain.errors import ResourceError
    from toolchain.passes import pipeline
    from toolchain.targets import load_target
    from toolchain.testing import random_lif_graph
    tiny = dataclasses.replace(load_target("loihi2"), chips=1, cores_per_chip=2, neurons_per_core=16)
    ran = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **k: ran.append(1))
    with pytest.raises(ResourceError, match=r"needs at least 4 cores for its 50 neurons .* at most 32 neurons") as ei:
        compile_graph(random_lif_graph([10, 40, 10], seed=0), tiny)
    assert ei.value.field == "cores" and (ei.value.need, ei.value.limit) == (4, 2) and not ran  # before any pass
    with pytest.raises(ResourceError, match="compiling needs about") as ei:
        monkeypatch.setenv("SNNC_MEMORY_LIMIT", "10K")
        compile_graph(random_lif_graph([10, 20, 10], seed=0), "loihi2")
    assert ei.value.field == "weight" and not ran


@pytest.mark.parametrize("cmd", ["simulate", "verify"])
def test_impossible_steps_refused_up_front(build, tmp_path, capsys, x_npy, cmd):
    args = (["simulate", build, "-i", x_npy, "-o", tmp_path / "r.npz"] if cmd == "simulate"
            else ["verify", build, "--random", "1"])
    rc, _, err = snnc(capsys, *args, "--steps", "1000000000", seconds=30)
    assert_one_error(rc, err, "field 'steps'", "1,000,000,000 steps", "available", "fewer steps")
    assert not (tmp_path / "r.npz").exists()


def test_long_run_writes_progress_lines_to_a_log(build, tmp_path, capsys, x_npy, monkeypatch):
    from toolchain.cli import simulate as S
    rc, _, err = snnc(capsys, "simulate", build, "-i", x_npy, "-o", tmp_path / "a.npz", "--steps", "40")
    assert rc == 0 and "simulate: step" not in err
    monkeypatch.setattr(S, "LONG_RUN", 0)  # every run counts as long
    rc, _, err = snnc(capsys, "simulate", build, "-i", x_npy, "-o", tmp_path / "b.npz", "--steps", "40")
    assert rc == 0
    assert [ln for ln in err.splitlines() if ln.startswith("simulate: step")][-1].startswith(
        "simulate: step 40/40 (100%)")
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert np.array_equal(a["spikes"], b["spikes"]) and np.array_equal(a["steps_run"], b["steps_run"])


def test_verify_writes_progress_lines_to_a_log(build, capsys):
    """Under pytest stderr is no terminal: verify writes a line after the reference run and after each Lava
    sample (a long Lava run is never silent in a log)."""
    rc, out, err = snnc(capsys, "verify", build, "--random", "2", "--steps", "6")
    assert rc == 0 and "bit-exact: yes" in out
    lines = [ln for ln in err.splitlines() if ln.startswith("verify: ")]
    assert lines[0].startswith("verify: reference done") and lines[-1].startswith("verify: lava sample 2/2")


# ------------------------------------------------------------------------------------------ tracebacks
@pytest.mark.parametrize("shape,words", [((0, 6, 16), "empty batch"), ((2, 0, 16), "empty time axis")])
def test_empty_batch_or_time_axis(build, tmp_path, capsys, shape, words):
    np.save(tmp_path / "e.npy", np.zeros(shape, np.int32))
    rc, _, err = snnc(capsys, "simulate", build, "-i", tmp_path / "e.npy", "-o", tmp_path / "r.npz")
    assert_one_error(rc, err, words, "node 'spikes_in'")
    rc, _, err = snnc(capsys, "verify", build, "-i", tmp_path / "e.npy")
    assert_one_error(rc, err, words)
    assert not (tmp_path / "r.npz").exists()


def _edited(build: Path, tmp_path: Path, edit=None, truncate: bool = False) -> Path:
    b = tmp_path / "edited"
    shutil.copytree(build, b)
    if edit is not None:
        doc = json.loads((b / "program.json").read_text())
        edit(doc)
        (b / "program.json").write_text(json.dumps(doc))
    if truncate:
        data = (b / "arrays.npz").read_bytes()
        (b / "arrays.npz").write_bytes(data[: len(data) // 2])
    return b


def test_truncated_arrays_npz(build, tmp_path, capsys, x_npy):
    b = _edited(build, tmp_path, truncate=True)
    rc, _, err = snnc(capsys, "simulate", b, "-i", x_npy, "-o", tmp_path / "r.npz")
    assert_one_error(rc, err, "arrays.npz", "truncated")


@pytest.mark.parametrize("value,words", [("banana", "must be an integer"), (30, "outside [-8, 7]")])
def test_edited_weight_exp_is_refused_on_load(build, tmp_path, capsys, value, words):
    b = _edited(build, tmp_path, lambda d: d["synapses"][0].__setitem__("weight_exp", value))
    for args in (["verify", b, "--random", "1", "--steps", "3"], ["report", b]):
        rc, out, err = snnc(capsys, *args)
        assert_one_error(rc, err, f"file '{b}'", "node 'fc_in'", "field 'weight_exp'", words)
        assert "bit-exact" not in out


@pytest.mark.parametrize("edit,words", [
    (lambda d: d["groups"][0].__setitem__("shape", [10 ** 12]), "field 'shape'"),
    (lambda d: d.__setitem__("output", "nope"), "names no group"),
    (lambda d: d["synapses"][0].__setitem__("dst", "zz"), "'zz' does not exist"),
    (lambda d: d["groups"][0].__setitem__("spiking", "yes"), "must be true/false"),
    (lambda d: d["groups"][0]["shape"].append(2), "has 24 values for 48 neurons"),
    (lambda d: d["synapses"][0].__setitem__("shape", [24, 17]), "weight shape [24, 17] does not join"),
    (lambda d: d.__setitem__("synapses", None), "field 'synapses': must be a list"),
])
def test_inconsistent_program_json_is_refused(build, tmp_path, capsys, edit, words):
    b = _edited(build, tmp_path, edit)
    rc, _, err = snnc(capsys, "verify", b, "--random", "1", "--steps", "2")
    assert_one_error(rc, err, words)


def test_unwritable_outputs_end_in_one_error_line(build, tmp_path, capsys, x_npy):
    # /proc refuses new files even for root, so this holds in containers too
    rc, _, err = snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", "/proc/snnc-build")
    assert_one_error(rc, err, "/proc")
    rc, _, err = snnc(capsys, "simulate", build, "-i", x_npy, "-o", "/proc/r.npz")
    assert_one_error(rc, err, "/proc")
    y = tmp_path / "y.npy"
    np.save(y, np.zeros(2, np.int64))
    rc, _, err = snnc(capsys, "report", build, "--data", x_npy, "--labels", y, "--plot", "/proc/p.png")
    assert_one_error(rc, err, "/proc/p.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_build_folder_for_calibrate_and_report(build, tmp_path, capsys, x_npy):
    ro = tmp_path / "ro"
    shutil.copytree(build, ro / "b")
    y = tmp_path / "y.npy"
    np.save(y, np.zeros(2, np.int64))
    os.chmod(ro / "b", stat.S_IRUSR | stat.S_IXUSR)
    os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)
    try:
        rc, _, err = snnc(capsys, "calibrate", ro / "b", "--data", x_npy, "--labels", y)
        assert_one_error(rc, err)
        rc, _, err = snnc(capsys, "report", ro / "b", "--data", x_npy, "--labels", y)
        assert_one_error(rc, err, "not writable")
    finally:
        os.chmod(ro, 0o755)
        os.chmod(ro / "b", 0o755)


def test_memory_error_in_the_loader(tmp_path, capsys, monkeypatch):
    import nir

    def oom(*a, **k):
        raise MemoryError()
    monkeypatch.setattr(nir, "read", oom)
    rc, _, err = snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", tmp_path / "b")
    assert_one_error(rc, err, "out of memory")
    assert not (tmp_path / "b").exists()


def test_memory_error_inside_a_pass_is_out_of_memory_not_a_bug(tmp_path, capsys, monkeypatch):
    from toolchain.passes import pipeline

    def oom(*a, **k):
        raise MemoryError("Unable to allocate 275. MiB")
    monkeypatch.setattr(pipeline, "quantise", oom)
    rc, _, err = snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", tmp_path / "b")
    assert_one_error(rc, err, f"file '{DEMO}'", "out of memory in pass 'quantise'", "275. MiB")
    assert "internal error" not in err and not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------ silent wrong results
def test_zero_steps_is_an_error_not_an_empty_result(build, tmp_path, capsys, x_npy):
    rc, _, err = snnc(capsys, "simulate", build, "-i", x_npy, "-o", tmp_path / "r.npz", "--steps", "0")
    assert_one_error(rc, err, "field 'steps'", "at least 1")
    assert not (tmp_path / "r.npz").exists()
    rc, out, err = snnc(capsys, "verify", build, "-i", x_npy, "--steps", "0")
    assert_one_error(rc, err, "field 'steps'")
    assert "bit-exact" not in out
    rc, out, err = snnc(capsys, "verify", build, "--random", "1", "--steps", "0")
    assert_one_error(rc, err, "field 'steps'")


def test_a_second_writer_of_one_build_folder_is_refused(tmp_path, capsys):
    """While one process holds a build folder (compiling into it), a second compile into it fails clearly."""
    out = tmp_path / "b"
    code = textwrap.dedent(f"""
        import sys, time
        from toolchain.build_io import build_lock
        with build_lock({str(out)!r}):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, out_text, err = snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", out)
        assert_one_error(rc, err, f"file '{out}'", "being written by another process", f"pid {holder.pid}")
        assert "wrote" not in out_text and not out.exists()
    finally:
        holder.communicate("\n", timeout=30)
    rc, out_text, _ = snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", out)  # free again; no lock file left
    assert rc == 0 and "wrote" in out_text and not (tmp_path / ".b.lock").exists()


# ------------------------------------------------------------------------------------------ data loss
def test_recompile_keeps_the_users_files(tmp_path, capsys):
    out = tmp_path / "b"
    assert snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", out)[0] == 0
    (out / "notes.txt").write_text("mine")
    (out / "report.png").write_bytes(b"\x89PNG")
    (out / "sub").mkdir()
    (out / "sub" / "x").write_text("x")
    assert snnc(capsys, "compile", DEMO, "--dt", "2e-3", "-o", out)[0] == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.png").read_bytes() == b"\x89PNG"
    assert listing(out) == ["arrays.npz", "notes.txt", "program.json", "report.png", "sub", "sub/x"]
    assert json.loads((out / "program.json").read_text())["dt"] == 2e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temp folder or lock file left beside it


def test_a_folder_of_other_files_is_never_written_into(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"cat")
    rc, _, err = snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", out)
    assert_one_error(rc, err, f"file '{out}'", "holds no program build")
    assert listing(out) == ["cat.jpg"] and (out / "cat.jpg").read_bytes() == b"cat"


# ------------------------------------------------------------------------------------------ unclear messages
def test_r_zero_names_node_and_field(tmp_path, capsys):
    f = bad_nir_file(tmp_path / "r0.nir", "r_zero")
    rc, _, err = snnc(capsys, "compile", f, "--dt", "1e-3", "-o", tmp_path / "b")
    assert_one_error(rc, err, f"file '{f}'", "node 'lif'", "field 'r'", "r = 0")
    assert "IndexError" not in err


def test_zero_byte_npy(build, tmp_path, capsys):
    (tmp_path / "z.npy").write_bytes(b"")
    rc, _, err = snnc(capsys, "simulate", build, "-i", tmp_path / "z.npy", "-o", tmp_path / "r.npz")
    assert_one_error(rc, err, "z.npy", "empty (0 bytes)")
    assert "aborted" not in err
    y = tmp_path / "y.npy"
    np.save(y, np.zeros(2, np.int64))
    rc, _, err = snnc(capsys, "calibrate", build, "--data", tmp_path / "z.npy", "--labels", y)
    assert_one_error(rc, err, "z.npy", "empty")


def test_missing_output_folder_names_the_output_not_a_temp_file(build, tmp_path, capsys, x_npy):
    rc, _, err = snnc(capsys, "simulate", build, "-i", x_npy, "-o", tmp_path / "nope" / "r.npz")
    line = assert_one_error(rc, err, f"file '{tmp_path / 'nope' / 'r.npz'}'", "does not exist")
    assert ".tmp" not in line


def test_pass_errors_name_the_file_without_the_pass_list(tmp_path, capsys):
    import nir
    f = tmp_path / "th.nir"  # a stateless Threshold: refused in quantise
    nir.write(str(f), nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "w": nir.Linear(np.eye(3)),
                                          "th": nir.Threshold(np.full(3, 0.5)), "out": nir.Output(np.array([3]))},
                                   edges=[("in", "w"), ("w", "th"), ("th", "out")]))
    rc, _, err = snnc(capsys, "compile", f, "--dt", "1e-3", "-o", tmp_path / "b")
    assert_one_error(rc, err, f"file '{f}'", "node 'th'", "[in pass 'quantise']")
    assert "passes before" not in err


def test_missing_dt_speaks_command_line(tmp_path, capsys):
    f = bad_nir_file(tmp_path / "nodt.nir", "no_dt")
    rc, _, err = snnc(capsys, "compile", f, "-o", tmp_path / "b")
    assert_one_error(rc, err, f"file '{f}'", "field 'dt'", "--dt SECONDS")
    assert "dt=" not in err


def test_debug_after_the_subcommand(build, tmp_path, capsys):
    rc, out, err = snnc(capsys, "inspect", DEMO, "--debug")
    assert rc == 0 and "network:" in out
    from toolchain.errors import InputError
    (tmp_path / "z.npy").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):  # --debug shows the exception instead of the one line
        main(["simulate", str(build), "-i", str(tmp_path / "z.npy"), "-o", str(tmp_path / "r.npz"), "--debug"])


# ------------------------------------------------------------------------------------------ reproducibility
def test_two_identical_compiles_give_identical_folders(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "sub" / "b"
    b.parent.mkdir()
    (tmp_path / "other").mkdir()
    shutil.copy(DEMO, tmp_path / "other" / DEMO.name)
    assert snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", a)[0] == 0
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the same file by another path, from another folder
    try:
        assert snnc(capsys, "compile", f"other/{DEMO.name}", "--dt", "1e-3", "-o", "sub/b")[0] == 0
    finally:
        os.chdir(cwd)
    diff = subprocess.run(["diff", "-r", str(a), str(b)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout
    doc = json.loads((a / "program.json").read_text())
    assert "pass_seconds" not in doc["metadata"] and doc["metadata"]["file"] == "demo_recurrent.nir"
    assert str(REPO) not in (a / "program.json").read_text()  # no host path


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_permissions_follow_the_umask(tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        assert snnc(capsys, "compile", DEMO, "--dt", "1e-3", "-o", tmp_path / "b")[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o777 & ~umask
    for f in ("program.json", "arrays.npz"):
        assert stat.S_IMODE((tmp_path / "b" / f).stat().st_mode) == 0o666 & ~umask


def test_netx_file_follows_the_umask(tmp_path, capsys):
    f = bad_nir_file(tmp_path / "ff.nir", "ff")
    old = os.umask(0o022)
    try:
        rc, _, err = snnc(capsys, "compile", f, "--dt", "1e-3", "--no-align-bias", "-o", tmp_path / "b",
                          "--netx", tmp_path / "n.net")
    finally:
        os.umask(old)
    assert rc == 0, err
    assert stat.S_IMODE((tmp_path / "n.net").stat().st_mode) == 0o644


# ------------------------------------------------------------------------------------------ evidence
def test_inspect_counts_non_zero_synapses(capsys):
    rc, out, _ = snnc(capsys, "inspect", DEMO)
    assert rc == 0
    assert "w_rec (Linear): weight -1.132..0.7657 (dense, 576/576 stored, 177 non-zero)" in out
    assert "1080 stored, 681 non-zero (connection sparsity 0.3694)" in out
