"""Generated chaotic series, normalisation, prediction windows, level encoding and NRMSE."""
import numpy as np
import pytest

from toolchain.data.timeseries import (SYSTEMS, generate, level_encode, lorenz63, mackey_glass,
                                       make_prediction_task, normalise, nrmse, prediction_windows, rossler)
from toolchain.errors import InputError


@pytest.mark.parametrize("system,dim", [("lorenz63", 3), ("rossler", 3), ("mackey_glass", 1)])
def test_shapes_seeded_and_finite(system, dim):
    a = generate(system, 300, seed=1)
    b = generate(system, 300, seed=1)
    c = generate(system, 300, seed=2)
    assert a.shape == (300, dim) and a.dtype == np.float64
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_lorenz_on_the_butterfly():
    x = lorenz63(3000, seed=0)
    # the attractor: z around 23.5, |x| < 25, x changes sign (two wings), y follows x
    assert 20 < x[:, 2].mean() < 27
    assert np.abs(x[:, 0]).max() < 25 and np.abs(x[:, 1]).max() < 35
    assert (x[:, 0] > 0).mean() > 0.2 and (x[:, 0] < 0).mean() > 0.2
    assert np.corrcoef(x[:, 0], x[:, 1])[0, 1] > 0.7


def test_lorenz_rk4_converges_with_step():
    coarse = lorenz63(50, h=0.01, sample_every=2, transient=0, seed=3)
    fine = lorenz63(50, h=0.005, sample_every=4, transient=0, seed=3)
    # same sample times (0.02 apart), RK4 error O(h^4): the trajectories agree closely over one time unit
    assert np.max(np.abs(coarse - fine)) < 1e-3 * np.max(np.abs(fine))


def test_rossler_and_mackey_glass_ranges():
    r = rossler(2000, seed=0)
    assert r[:, 2].min() >= -0.5 and r[:, 2].max() < 30 and np.abs(r[:, 0]).max() < 15
    m = mackey_glass(1500, seed=0)
    assert 0.2 < m.min() and m.max() < 1.5
    # chaotic, not a fixed point or a short cycle: the series keeps visiting new values
    assert m.std() > 0.15
    ac = [np.corrcoef(m[:-k, 0], m[k:, 0])[0, 1] for k in (50, 100, 200)]
    assert max(abs(a) for a in ac) < 0.95


def test_mackey_glass_rejects_bad_delay():
    with pytest.raises(InputError, match="tau"):
        mackey_glass(10, h=0.3, tau=17.0)


def test_normalise_and_invert():
    x = lorenz63(500, seed=0)
    z, norm = normalise(x, slice(0, 400))
    np.testing.assert_allclose(z[:400].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:400].std(0), 1, atol=1e-12)
    np.testing.assert_allclose(norm.invert(z), x, atol=1e-10)


def test_prediction_windows_shift_by_horizon():
    s = np.arange(50, dtype=float)[:, None] * np.array([[1.0, -1.0]])
    x, y = prediction_windows(s, window=10, horizon=2, stride=5)
    assert x.shape == y.shape == ((50 - 10 - 2) // 5 + 1, 10, 2)
    np.testing.assert_array_equal(y, x + np.array([2.0, -2.0]))
    np.testing.assert_array_equal(x[1, 0], s[5])
    with pytest.raises(InputError, match="too short"):
        prediction_windows(s[:5], window=10)


def test_level_encode_nearest_levels():
    v = np.array([[-10.0], [0.0], [0.11], [2.5]])
    s = level_encode(v, n_per_dim=11, lo=-2.5, hi=2.5, width=1.0)
    centres = np.linspace(-2.5, 2.5, 11)
    assert s.shape == (4, 11) and set(np.unique(s)) <= {0.0, 1.0}
    for row, val in zip(s, np.clip(v[:, 0], -2.5, 2.5)):
        active = np.flatnonzero(row)
        assert 1 <= active.size <= 3
        assert np.argmin(np.abs(centres - val)) in active
        assert np.all(np.abs(centres[active] - val) <= 0.5 + 1e-9)
    two = level_encode(np.array([[0.0, 1.0]]), n_per_dim=8)
    assert two.shape == (1, 16)


def test_nrmse_reference_points():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(20, 30, 3))
    assert nrmse(y, y) == 0.0
    mean_pred = np.broadcast_to(y.reshape(-1, 3).mean(0), y.shape)
    assert nrmse(mean_pred, y) == pytest.approx(1.0, rel=1e-9)
    with pytest.raises(InputError):
        nrmse(y[:, :5], y)


def test_prediction_task_split_in_time():
    task = make_prediction_task("rossler", n_train=6, n_test=3, window=20, n_per_dim=8, seed=4)
    assert task.x_train.shape == (6, 20, 3) and task.x_test.shape == (3, 20, 3)
    assert task.s_train.shape == (6, 20, 24)
    # targets are next-step values, and the test windows start where the training windows end
    np.testing.assert_array_equal(task.y_train[:, :-1], task.x_train[:, 1:])
    np.testing.assert_array_equal(task.y_train[-1, -1], task.x_test[0, 0])
    assert set(SYSTEMS) == {"lorenz63", "rossler", "mackey_glass"}
