"""Framework presets checked against the framework's own simulation (issue 12, deliverable 6).

Rockpool 3.1 declares ``nir<=1.0.4`` for its NIR export, which conflicts with our ``nir==1.0.8``: its exported
graph and its own spikes were written once by ``tests/data/frameworks/make_rockpool.py`` (Rockpool 3.1.0 installed
with ``pip install --no-deps --target``, see the script) and are shipped; this test needs no Rockpool.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

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
