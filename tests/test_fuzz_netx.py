"""Fuzzing netx files through the command line (issue 13, "netx files once they load"): one random defect in a
valid netx file (conv + flatten + dense + default neuron, or delays + dense_rec) — truncated or flipped bytes,
non-finite / negative / huge / fractional values in any dataset, another shape, a deleted dataset or group, an
unknown or unsupported layer type, a huge *declared* dataset — then ``snnc inspect`` and ``snnc compile``.

Property (as tests/test_fuzz.py): exit 0 with a complete build, or exactly one ``error:`` line and exit 1 with
nothing written; never a traceback, a hang or a runaway allocation (each case under the same time and memory
guard)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netx_files import conv_net, dense_rec_net
from test_fuzz import assert_clean, run_snnc


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("netx_fuzz")
    rng = np.random.default_rng(0)
    return [conv_net(root / "conv.net", rng), dense_rec_net(root / "rec.net", rng, "synapse")]


def _datasets(f: h5py.File) -> list:
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


def mutate_netx(src: Path, dst: Path, seed: int) -> str:
    """Copy ``src`` to ``dst`` with one random defect; returns a one-line description."""
    r = np.random.default_rng(seed)
    shutil.copyfile(src, dst)
    kind = str(r.choice(["truncate", "flip", "values", "shape", "delete", "type", "declared"]))
    if kind in ("truncate", "flip"):
        data = bytearray(dst.read_bytes())
        if kind == "truncate":
            cut = int(r.integers(0, len(data)))
            dst.write_bytes(bytes(data[:cut]))
            return f"truncated to {cut} bytes"
        idx = r.integers(0, len(data), size=int(r.integers(1, 16)))
        for i in idx:
            data[i] = int(r.integers(0, 256))
        dst.write_bytes(bytes(data))
        return f"{idx.size} bytes changed"
    with h5py.File(dst, "a") as f:
        sets = [s for s in _datasets(f) if not s.endswith("type")]
        name = str(r.choice(sets))
        old = np.asarray(f[name][()])
        if kind == "values":
            val = r.choice([np.nan, np.inf, -1.0, -1e9, 1e12, 0.5, 0.0, 2 ** 40])
            new = np.full(old.shape, val, np.float64)
            del f[name]
            f.create_dataset(name, data=new)
            return f"{name} = {val}"
        if kind == "shape":
            shapes = [(0,), (3, 1, 2), (), (old.size + 1,), (7, 7)]
            shp = shapes[int(r.integers(0, len(shapes)))]
            del f[name]
            f.create_dataset(name, data=np.ones(shp, np.float32))
            return f"{name} shape {shp}"
        if kind == "delete":
            target = name if r.random() < 0.7 else name.rsplit("/", 1)[0]
            del f[target]
            return f"deleted {target}"
        if kind == "type":
            layers = sorted(f["layer"].keys(), key=int)
            lay = str(r.choice(layers))
            t = str(r.choice(["pool", "banana", "conv", "dense", "input", "flatten", ""]))
            del f[f"layer/{lay}/type"]
            f[f"layer/{lay}"].create_dataset("type", (1,), "S10", [t.encode()])
            return f"layer/{lay} type -> {t!r}"
        del f[name]  # declared: a huge dataset that is never written
        f.create_dataset(name, shape=(2 ** 16, 2 ** 16), dtype="f4")
        return f"{name} declared (65536, 65536)"


def check_netx_case(seed: int, seeds, capsys) -> None:
    src = seeds[seed % len(seeds)]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        desc = mutate_netx(src, d / "m.net", seed)
        rc, _, err = run_snnc(capsys, "inspect", d / "m.net")
        assert_clean(rc, err, desc)
        rc, _, err = run_snnc(capsys, "compile", d / "m.net", "-o", d / "out", "--reset-interval", "7")
        assert_clean(rc, err, desc)
        if rc == 1:
            assert not (d / "out").exists(), (desc, "partial write")
        else:
            assert sorted(p.name for p in (d / "out").iterdir()) == ["arrays.npz", "program.json"], desc
        assert sorted(p.name for p in d.iterdir()) in (["m.net"], ["m.net", "out"]), desc


@settings(max_examples=16, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_netx_files(seed, seeds, capsys):
    check_netx_case(seed, seeds, capsys)


@pytest.mark.slow
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_netx_files_many(seed, seeds, capsys):
    check_netx_case(seed, seeds, capsys)
