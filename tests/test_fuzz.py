"""Fuzzing the command line (issue 13): random mutations of a valid NIR file, a valid build folder and a valid
input array (:func:`toolchain.testing.mutate_nir`, :func:`~toolchain.testing.mutate_build`,
:func:`~toolchain.testing.mutate_input`) go through ``snnc`` in-process.

Property: a clean result — exit 0 with a well-formed output — or exactly one ``error: ...`` line and exit 1 with
nothing written; never a traceback (an exception escaping ``main``), a hang or a partial write. Every case runs
under a time limit (SIGALRM) and an address-space limit (``RLIMIT_AS``: what is mapped now plus 3 GiB), so a
runaway allocation fails the case instead of the machine. The default run draws a fixed set (derandomized);
``-m slow`` draws many more at random. ``benchmarks/bad_inputs.py`` runs the same corpus in subprocesses.
"""
from __future__ import annotations

import contextlib
import resource
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolchain.cli.main import main
from toolchain.testing import mutate_build, mutate_input, mutate_nir

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "data" / "demo_recurrent.nir"
CASE_SECONDS = 60
CASE_EXTRA_BYTES = 3 * 2 ** 30


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def guarded(seconds: int = CASE_SECONDS, extra_bytes: int = CASE_EXTRA_BYTES):
    """Limit the block's wall time (a hang raises TimeoutError) and its new address space (an allocation past
    the limit raises MemoryError, which snnc must turn into its one error line)."""
    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")
    old_handler = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old_handler)


def run_snnc(capsys, *args):
    capsys.readouterr()
    with guarded():
        rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean(rc, err, desc):
    """Exit 0, or exit 1 with exactly one ``error:`` line (warnings aside) and no traceback."""
    assert "Traceback" not in err, (desc, err)
    assert rc in (0, 1), (desc, rc, err)
    if rc == 1:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error: "), (desc, err)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid build of the demo graph and a valid input for it."""
    root = tmp_path_factory.mktemp("fuzz")
    build = root / "build"
    assert main(["compile", str(DEMO), "--dt", "1e-3", "-o", str(build)]) == 0
    x = (np.random.default_rng(0).random((2, 8, 16)) < 0.3).astype(np.int32)
    return build, x


def _check_nir(seed: int, capsys) -> None:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        desc = mutate_nir(DEMO, d / "m.nir", seed)
        rc, _, err = run_snnc(capsys, "compile", d / "m.nir", "--dt", "1e-3", "-o", d / "out")
        assert_clean(rc, err, desc)
        if rc == 1:
            assert not (d / "out").exists(), (desc, "partial write")
        else:
            assert sorted(p.name for p in (d / "out").iterdir()) == ["arrays.npz", "program.json"]
        assert sorted(p.name for p in d.iterdir()) in (["m.nir"], ["m.nir", "out"]), desc  # no temp/lock left
        rc, out, err = run_snnc(capsys, "inspect", d / "m.nir")
        assert_clean(rc, err, desc)


def _check_build(seed: int, base, capsys) -> None:
    build, x = base
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        desc = mutate_build(build, d / "b", seed)
        np.save(d / "x.npy", x)
        before = {p.name: p.read_bytes() for p in (d / "b").iterdir()}
        rc, _, err = run_snnc(capsys, "simulate", d / "b", "-i", d / "x.npy", "-o", d / "r.npz")
        assert_clean(rc, err, desc)
        if rc == 1:
            assert not (d / "r.npz").exists(), (desc, "partial write")
        else:
            with np.load(d / "r.npz") as z:
                assert z["spikes"].shape[:2] == (2, 8) and set(np.unique(z["spikes"])) <= {0, 1}, desc
        assert {p.name: p.read_bytes() for p in (d / "b").iterdir()} == before, (desc, "the build was changed")
        rc, _, err = run_snnc(capsys, "report", d / "b")
        assert_clean(rc, err, desc)


def _check_input(seed: int, base, capsys) -> None:
    build, x = base
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        a, desc = mutate_input(x, seed)
        np.save(d / "x.npy", a)
        rc, _, err = run_snnc(capsys, "simulate", build, "-i", d / "x.npy", "-o", d / "r.npz")
        assert_clean(rc, err, desc)
        if rc == 1:
            assert not (d / "r.npz").exists(), (desc, "partial write")
            return
        assert desc in ("bool", "no_batch"), (desc, "a bad input was accepted")
        with np.load(d / "r.npz") as z:
            ref = np.asarray(z["spikes"])
        assert ref.shape[1] == 8 and set(np.unique(ref)) <= {0, 1}, desc


_FAST = settings(max_examples=12, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_SLOW = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEEDS = st.integers(0, 2 ** 32 - 1)


@_FAST
@given(seed=SEEDS)
def test_fuzz_nir_files(seed, capsys):
    _check_nir(seed, capsys)


@_FAST
@given(seed=SEEDS)
def test_fuzz_build_folders(seed, base, capsys):
    _check_build(seed, base, capsys)


@_FAST
@given(seed=SEEDS)
def test_fuzz_input_arrays(seed, base, capsys):
    _check_input(seed, base, capsys)


@pytest.mark.slow
@_SLOW
@given(seed=SEEDS)
def test_fuzz_nir_files_many(seed, capsys):
    _check_nir(seed, capsys)


@pytest.mark.slow
@_SLOW
@given(seed=SEEDS)
def test_fuzz_build_folders_many(seed, base, capsys):
    _check_build(seed, base, capsys)


@pytest.mark.slow
@_SLOW
@given(seed=SEEDS)
def test_fuzz_input_arrays_many(seed, base, capsys):
    _check_input(seed, base, capsys)


def test_guard_turns_a_runaway_allocation_into_memory_error():
    """The per-case memory guard works: an allocation past it fails instead of growing."""
    with pytest.raises(MemoryError):
        with guarded(extra_bytes=2 ** 28):
            np.ones(2 ** 30, dtype=np.uint8)  # 1 GiB past a 256 MiB allowance
