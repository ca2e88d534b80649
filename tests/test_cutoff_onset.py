"""The late-onset spike-stream task (toolchain.data.onset) used by the Cutoff benchmark."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.data.onset import make_onset_dataset, make_onset_streams, onset_templates
from toolchain.errors import InputError


def test_noise_free_streams_fire_exactly_the_template_during_the_burst():
    tmpl = onset_templates(5, 20, 4, seed=1)
    assert tmpl.shape == (5, 20) and (tmpl.sum(1) == 4).all()
    x, y, onset, strength = make_onset_streams(50, tmpl, steps=30, burst=6, noise=0.0, strength=(1.0, 1.0),
                                               seed=2)
    assert x.dtype == np.uint8 and x.shape == (50, 30, 20)
    assert (np.bincount(y, minlength=5) == 10).all()
    assert onset.min() >= 0 and onset.max() <= 30 - 6
    np.testing.assert_array_equal(strength, 1.0)
    for i in range(50):
        expect = np.zeros((30, 20), np.uint8)
        expect[onset[i]:onset[i] + 6] = tmpl[y[i]]
        np.testing.assert_array_equal(x[i], expect)


def test_background_rate_outside_the_burst_and_signal_inside():
    tmpl = onset_templates(4, 32, 8, seed=0)
    x, y, onset, strength = make_onset_streams(400, tmpl, steps=40, burst=10, noise=0.05, strength=(0.3, 0.3),
                                               seed=5)
    t = np.arange(40)
    burst = (t[None, :] >= onset[:, None]) & (t[None, :] < onset[:, None] + 10)     # (N, T)
    on_tmpl = tmpl[y]                                                                # (N, C)
    outside = x[~burst]                                                              # every channel: noise only
    assert abs(outside.mean() - 0.05) < 0.005
    inside = x.transpose(0, 2, 1)[np.broadcast_to(on_tmpl[:, :, None], (400, 32, 40)) &
                                  np.broadcast_to(burst[:, None, :], (400, 32, 40))]
    assert abs(inside.mean() - (1 - 0.95 * 0.7)) < 0.01                              # 0.335
    off_tmpl_inside = x.transpose(0, 2, 1)[np.broadcast_to(~on_tmpl[:, :, None], (400, 32, 40)) &
                                           np.broadcast_to(burst[:, None, :], (400, 32, 40))]
    assert abs(off_tmpl_inside.mean() - 0.05) < 0.01


def test_dataset_is_deterministic_and_splits_share_the_templates():
    a = make_onset_dataset(n_train=60, n_test=30, steps=24, channels=16, n_classes=3, active=4, burst=5, seed=7)
    b = make_onset_dataset(n_train=60, n_test=30, steps=24, channels=16, n_classes=3, active=4, burst=5, seed=7)
    c = make_onset_dataset(n_train=60, n_test=30, steps=24, channels=16, n_classes=3, active=4, burst=5, seed=8)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_train[:30], a.x_test)
    assert a.x_train.dtype == np.float32 and a.x_train.shape == (60, 24, 16) and a.time_major
    assert a.n_classes == 3 and a.info["onsets_test"].shape == (30,)
    # regenerating the test split from the same templates and its sub-seed gives the stored test set
    x, y, onset, _ = make_onset_streams(30, onset_templates(3, 16, 4, seed=7), steps=24, burst=5, seed=2 * 7 + 2)
    np.testing.assert_array_equal(a.x_test, x)
    np.testing.assert_array_equal(a.y_test, y)
    np.testing.assert_array_equal(a.info["onsets_test"], onset)


@pytest.mark.parametrize("kw, field", [({"active": 0}, "active"), ({"burst": 50}, "burst"),
                                       ({"noise": 1.0}, "noise"), ({"strength": (0.5, 0.2)}, "strength"),
                                       ({"n_classes": 1}, "n_classes")])
def test_bad_settings_name_the_field(kw, field):
    with pytest.raises(InputError, match=field):
        make_onset_dataset(n_train=10, n_test=5, **kw)
