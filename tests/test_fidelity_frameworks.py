"""Framework presets checked against the framework's own simulation (issue 12, deliverable 6).

Rockpool 3.1 declares ``nir<=1.0.4`` for its NIR export, which conflicts with our ``nir==1.0.8``: its exported
graph and its own spikes were written once by ``tests/data/frameworks/make_rockpool.py`` (Rockpool 3.1.0 installed
with ``pip install --no-deps --target``, see the script) and are shipped; this test needs no Rockpool.

Sinabs 3.1.3 (``nir<=1.0.4``, and an exporter that calls nirtorch 1's ``extract_nir_graph``) is handled the same way:
``tests/data/frameworks/make_sinabs.py`` ran once with Sinabs, nir 1.0.4 and nirtorch 1.0 installed into a separate
folder put first on ``PYTHONPATH`` (torch and numpy from our venv) and wrote ``sinabs_net.nir`` and Sinabs' own
outputs; the slow test runs the generator again when that folder exists and compares.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from toolchain.nir_io import load
from toolchain.sim.float import simulate_float

DATA = Path(__file__).resolve().parent / "data" / "frameworks"


def test_rockpool_preset_reproduces_rockpools_own_spikes():
    ref = np.load(DATA / "rockpool_lif.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = load(DATA / "rockpool_lif.nir", preset="rockpool")
    assert g.dt == 1e-3 and g["1_LIFTorch"].kind == "CubaLIF"
    res = simulate_float(g, ref["x"].astype(np.float64), record=True)
    for node, key in (("1_LIFTorch", "spikes_1"), ("3_LIFTorch", "spikes_3")):
        spikes = ref[key]
        assert spikes.max() == 1 and spikes.sum() > 300  # one spike per step at most: the IR's rule
        assert np.array_equal(res.values[node], spikes), node
    # the file's time constants are Rockpool's exact ones; the preset rewrote them into the Euler-equivalent step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = load(DATA / "rockpool_lif.nir", dt=1e-3, reset="subtract")
    a = 1e-3 / raw["1_LIFTorch"].tau_mem
    np.testing.assert_allclose(1e-3 / g["1_LIFTorch"].tau_mem, 1 - np.exp(-a), rtol=1e-6)
    plain = simulate_float(raw, ref["x"].astype(np.float64))
    assert not np.array_equal(plain.output, ref["spikes_3"])  # without the preset the spikes differ


def test_sinabs_preset_reproduces_sinabs_own_run():
    ref = np.load(DATA / "sinabs_net.npz")
    assert float(ref["max_spikes_per_step"]) == 1.0  # Sinabs' MultiSpike never emitted two spikes in a step here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = load(DATA / "sinabs_net.nir", preset="sinabs")
    assert g.dt == 1.0 and [g[n].kind for n in ("1", "3", "5")] == ["LIF", "IF", "LI"]
    res = simulate_float(g, ref["x"].astype(np.float64), record=True)
    for node, key in (("1", "out_lif"), ("3", "out_iaf")):
        assert ref[key].sum() > 50, key
        assert np.array_equal(res.values[node], ref[key]), node
    # the ExpLeak voltage: Sinabs ran in float32, we in float64
    np.testing.assert_allclose(res.values["5"], ref["out_leak"], atol=2e-6 * np.abs(ref["out_leak"]).max())
    # without the exact-decay rewriting (Euler with the file's tau) the spikes differ
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = load(DATA / "sinabs_net.nir", dt=1.0, reset="subtract")
    a = 1.0 / raw["1"].tau
    np.testing.assert_allclose(1.0 / g["1"].tau, 1 - np.exp(-a), rtol=1e-12)
    plain = simulate_float(raw, ref["x"].astype(np.float64), record=True)
    assert not np.array_equal(plain.values["1"], ref["out_lif"])


SINABS_SITE = Path(os.environ.get("TOOLCHAIN_SINABS_SITE", "/tmp/sinabs_site"))


@pytest.mark.slow
@pytest.mark.skipif(not (SINABS_SITE / "sinabs").is_dir(), reason=f"no Sinabs folder at {SINABS_SITE} (see "
                    "tests/data/frameworks/make_sinabs.py for the pip command)")
def test_sinabs_generator_rebuilds_the_shipped_files(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SINABS_SITE))
    subprocess.run([sys.executable, str(DATA / "make_sinabs.py"), "--out", str(tmp_path)], env=env, check=True,
                   capture_output=True, timeout=600)
    new, old = np.load(tmp_path / "sinabs_net.npz"), np.load(DATA / "sinabs_net.npz")
    assert sorted(new.files) == sorted(old.files)
    for k in new.files:
        assert np.array_equal(new[k], old[k]), k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = load(tmp_path / "sinabs_net.nir", preset="sinabs"), load(DATA / "sinabs_net.nir", preset="sinabs")
    assert list(a.nodes) == list(b.nodes)
    for n in a.nodes:
        for f, v in vars(a[n]).items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, getattr(b[n], f)), (n, f)
