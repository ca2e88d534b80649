"""toolchain.data: built-in data sets, encoders, the generated event task and the file loaders (no downloads)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.data import (EVENT_DTYPE, RateEncoder, SplitDataset, bin_events, iterate_batches, latency_encode,
                            load_digits, load_digits_spikes, load_dvs_gesture, load_mnist1d, load_nmnist, load_shd,
                            make_event_dataset, make_event_streams, rate_encode)
from toolchain.data.tonic_loaders import read_nmnist_bin, write_nmnist_bin
from toolchain.errors import InputError


# ------------------------------------------------------------------------------------------------------- digits
def test_digits_split_is_fixed_stratified_and_scaled():
    a, b = load_digits(seed=0), load_digits(seed=0)
    assert a.x_train.shape == (1347, 64) and a.x_test.shape == (450, 64)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert 0.0 == a.x_train.min() and a.x_train.max() == 1.0
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # stratified: ~45 per class
    c = load_digits(seed=1)
    assert not np.array_equal(a.y_test, c.y_test)
    assert load_digits(flatten=False).x_train.shape[1:] == (1, 8, 8)


def test_digits_deterministic_spikes_are_lossless_at_16_steps():
    d = load_digits()
    s = load_digits_spikes(steps=16, mode="deterministic")
    assert s.x_train.shape == (1347, 16, 64) and s.time_major and s.steps == 16
    assert set(np.unique(s.x_train)) <= {0.0, 1.0}
    assert np.array_equal(s.x_train.sum(1), np.round(d.x_train * 16))


def test_digits_upsample_repeats_pixels_and_default_is_unchanged():
    from toolchain.data.digits import upsample_nearest
    base = load_digits(flatten=False)
    assert base.info["upsample"] == 1 and base.info["image_shape"] == (1, 8, 8)
    up = load_digits(flatten=False, upsample=2)
    assert up.x_train.shape == (1347, 1, 16, 16) and up.x_test.shape == (450, 1, 16, 16)
    assert up.info["upsample"] == 2 and up.info["image_shape"] == (1, 16, 16)
    assert np.array_equal(up.y_train, base.y_train) and np.array_equal(up.y_test, base.y_test)
    for di in range(2):  # every 2x2 block holds the original pixel
        for dj in range(2):
            assert np.array_equal(up.x_train[:, :, di::2, dj::2], base.x_train)
            assert np.array_equal(up.x_test[:, :, di::2, dj::2], base.x_test)
    flat = load_digits(upsample=3)
    assert flat.x_train.shape == (1347, 576)
    assert np.array_equal(flat.x_train.reshape(-1, 1, 24, 24)[:, :, 5, 7], base.x_train[:, :, 1, 2])
    assert np.array_equal(upsample_nearest(np.array([[1, 2], [3, 4]]), 2),
                          np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="upsample"):
            load_digits(upsample=bad)


def test_digits_spikes_upsampled_code_each_block_like_its_pixel():
    s1 = load_digits_spikes(steps=8, flatten=False)
    s2 = load_digits_spikes(steps=8, flatten=False, upsample=2)
    assert s1.x_train.shape == (1347, 8, 1, 8, 8) and s2.x_train.shape == (1347, 8, 1, 16, 16)
    assert s2.info["upsample"] == 2 and s2.info["encoder"]["steps"] == 8
    assert np.array_equal(s2.x_test[..., 1::2, ::2], s1.x_test)
    assert np.array_equal(s2.x_train, np.repeat(np.repeat(s1.x_train, 2, axis=-2), 2, axis=-1))
    assert np.array_equal(load_digits_spikes(steps=8).x_train, s1.x_train.reshape(1347, 8, 64))  # default as before
    assert load_digits_spikes(steps=4, upsample=2).x_train.shape == (1347, 4, 256)


# ------------------------------------------------------------------------------------------------------- mnist1d
def test_mnist1d_generated_locally_as_sequence_and_leaves_global_rng_alone():
    np.random.seed(123)
    expect = np.random.rand()
    np.random.seed(123)
    ds = load_mnist1d(num_samples=200)
    assert np.random.rand() == expect  # the generator's set_seed did not leak
    assert ds.x_train.shape == (160, 40, 1) and ds.x_test.shape == (40, 40, 1)
    assert ds.time_major and ds.steps == 40 and ds.n_classes == 10
    again = load_mnist1d(num_samples=200, as_sequence=False)
    assert again.x_train.shape == (160, 40)
    assert np.array_equal(again.x_train, ds.x_train[..., 0])
    with pytest.raises(InputError, match="unknown mnist1d"):
        load_mnist1d(nonsense=1)


def test_mnist1d_disk_cache_round_trip(tmp_path):
    a = load_mnist1d(num_samples=100, seed=7, cache_dir=str(tmp_path))
    files = list(tmp_path.glob("mnist1d_*.npz"))
    assert len(files) == 1
    from toolchain.data import mnist1d as m
    m._CACHE.clear()
    b = load_mnist1d(num_samples=100, seed=7, cache_dir=str(tmp_path))
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)


# ------------------------------------------------------------------------------------------------------ encoders
def test_deterministic_rate_code_exact_counts_and_even_spacing():
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0, 0.3]])
    s = rate_encode(x, 20, "deterministic")
    assert s.shape == (1, 20, 5)
    assert s[0].sum(0).tolist() == [0, 5, 10, 20, 6]
    gaps = torch.diff(torch.nonzero(s[0, :, 1]).flatten())
    assert torch.all(gaps == 4)


def test_bernoulli_rate_code_is_seeded_and_has_the_right_rate():
    x = torch.full((4, 10), 0.3)
    a = rate_encode(x, 500, "bernoulli", seed=3)
    assert torch.equal(a, rate_encode(x, 500, "bernoulli", seed=3))
    assert not torch.equal(a, rate_encode(x, 500, "bernoulli", seed=4))
    assert abs(a.mean().item() - 0.3) < 0.02
    assert rate_encode(torch.full((1, 3), 2.0), 5, gain=1.0).min() == 1.0  # p clipped to 1
    enc = RateEncoder(8, seed=0)
    first, second = enc(x), enc(x)
    assert not torch.equal(first, second)  # fresh draws per call
    assert torch.equal(RateEncoder(8, seed=0)(x), first)


def test_latency_code_brighter_first_and_silent_below_threshold():
    x = torch.tensor([[1.0, 0.5, 0.0, 0.005, 0.75]])
    s = latency_encode(x, 11, "linear", threshold=0.01)
    assert s.sum().item() == 3 and s[0].sum(0).tolist() == [1, 1, 0, 0, 1]
    t = s[0].argmax(0)
    assert t[0] == 0 and t[1] == 5 and t[4] == 2
    lg = latency_encode(x, 11, "log", threshold=0.01)
    assert lg[0, 0, 0] == 1 and lg[0].sum(0)[3] == 0
    with pytest.raises(InputError):
        latency_encode(x, 0)
    with pytest.raises(InputError):
        rate_encode(torch.tensor([[float("nan")]]), 3)


def test_iterate_batches_seeded_shuffle_covers_everything():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10) % 3
    a = [b[1].tolist() for b in iterate_batches(x, y, 4, shuffle=True, seed=1)]
    b = [b[1].tolist() for b in iterate_batches(x, y, 4, shuffle=True, seed=1)]
    assert a == b and [len(v) for v in a] == [4, 4, 2]
    seen = sorted(int(v) for xb, _ in iterate_batches(x, y, 4, shuffle=True, seed=1) for v in xb[:, 0])
    assert seen == list(range(10))


def test_split_dataset_checks_labels():
    with pytest.raises(InputError, match="labels outside"):
        SplitDataset("bad", np.zeros((2, 3), np.float32), np.array([0, 5]), np.zeros((1, 3), np.float32),
                     np.array([0]), 3)


# ------------------------------------------------------------------------------------------------- event task
def test_event_streams_are_seeded_sorted_and_in_range():
    a, la = make_event_streams(6, sensor_size=(12, 10), n_classes=4, seed=5)
    b, lb = make_event_streams(6, sensor_size=(12, 10), n_classes=4, seed=5)
    assert np.array_equal(la, lb) and all(np.array_equal(u, v) for u, v in zip(a, b))
    for ev in a:
        assert ev.dtype == EVENT_DTYPE and len(ev) > 20
        assert np.all(np.diff(ev["t"]) >= 0)
        assert ev["x"].min() >= 0 and ev["x"].max() < 12 and ev["y"].min() >= 0 and ev["y"].max() < 10
        assert set(np.unique(ev["p"])) <= {0, 1}
    assert sorted(np.bincount(la, minlength=4).tolist()) == [1, 1, 2, 2]


def test_moving_square_events_follow_the_motion():
    streams, labels = make_event_streams(8, n_classes=4, noise_rate_hz=0.0, seed=1)
    for ev, lab in zip(streams, labels):
        on = ev[ev["p"] == 1]
        early, late = on[: len(on) // 4], on[-len(on) // 4:]
        dx = late["x"].mean() - early["x"].mean()
        dy = late["y"].mean() - early["y"].mean()
        expect = {0: (dx > 3), 1: (dx < -3), 2: (dy > 3), 3: (dy < -3)}[int(lab)]
        assert expect, (lab, dx, dy)


def test_bin_events_counts_every_event_in_the_window():
    ev = np.zeros(5, EVENT_DTYPE)
    ev["x"] = [0, 1, 2, 3, 3]
    ev["y"] = [0, 1, 2, 3, 3]
    ev["t"] = [0, 24, 25, 99, 100]  # the last one is outside [0, 100)
    ev["p"] = [0, 1, 1, 0, 1]
    f = bin_events(ev, (4, 4, 2), 4, 100)
    assert f.shape == (4, 2, 4, 4) and f.sum() == 4
    assert f[0, 0, 0, 0] == 1 and f[0, 1, 1, 1] == 1 and f[1, 1, 2, 2] == 1 and f[3, 0, 3, 3] == 1
    assert bin_events(ev[:0], (4, 4, 2), 3, 10).shape == (3, 2, 4, 4)


def test_event_dataset_shapes_and_learnable_signal():
    ds = make_event_dataset(n_train=64, n_test=16, steps=10, sensor_size=(12, 12), seed=2)
    assert ds.x_train.shape == (64, 10, 2, 12, 12) and ds.time_major
    assert set(np.unique(ds.x_train)) <= {0.0, 1.0}
    flat = make_event_dataset(n_train=8, n_test=4, steps=10, sensor_size=(12, 12), flatten=True, seed=2)
    assert flat.x_train.shape == (8, 10, 288)
    # a motion-energy feature (x-centroid of late minus early ON events) separates left from right
    on = ds.x_train[:, :, 1].sum(2)  # (N, T, W): ON events per column
    cols = np.arange(12)
    cx = (on * cols).sum(-1) / np.maximum(on.sum(-1), 1)
    shift = cx[:, -3:].mean(1) - cx[:, :3].mean(1)
    assert shift[ds.y_train == 0].mean() > 2 and shift[ds.y_train == 1].mean() < -2


# ------------------------------------------------------------------------------------------------- file loaders
def test_nmnist_loader_reads_the_40bit_format(tmp_path):
    root = tmp_path / "NMNIST"
    rng = np.random.default_rng(0)
    truth = {}
    for split in ("Train", "Test"):
        for digit in (3, 7):
            d = root / split / str(digit)
            d.mkdir(parents=True)
            n = 50
            x, y = rng.integers(0, 34, n), rng.integers(0, 34, n)
            t = np.sort(rng.integers(0, 290_000, n))
            p = rng.integers(0, 2, n)
            write_nmnist_bin(d / "00001.bin", x, y, t, p)
            truth[(split, digit)] = (x, y, t, p)
    ev = read_nmnist_bin(root / "Train" / "3" / "00001.bin")
    x, y, t, p = truth[("Train", 3)]
    assert np.array_equal(ev["x"], x) and np.array_equal(ev["y"], y) and np.array_equal(ev["t"], t)
    assert np.array_equal(ev["p"], p)
    ds = load_nmnist(tmp_path, train=True, n_bins=10, binary=False)
    assert len(ds) == 2 and [lab for _, lab in ds.items] == [3, 7]
    frames, label = ds[0]
    assert frames.shape == (10, 2, 34, 34) and label == 3 and frames.sum().item() == 50
    xs, ys = load_nmnist(tmp_path, train=False, n_bins=5).to_arrays()
    assert xs.shape == (2, 5, 2, 34, 34) and ys.tolist() == [3, 7]
    (root / "Train" / "3" / "bad.bin").write_bytes(b"\x00" * 7)
    bad = load_nmnist(tmp_path, train=True)
    with pytest.raises(InputError, match="multiple of 5"):
        bad.to_arrays()
    with pytest.raises(InputError, match="never download"):
        load_nmnist(tmp_path / "missing")


def test_shd_loader_reads_hdf5(tmp_path):
    import h5py
    path = tmp_path / "shd_train.h5"
    rng = np.random.default_rng(1)
    samples = []
    with h5py.File(path, "w") as h5:
        vf = h5py.vlen_dtype(np.dtype("float32"))
        vu = h5py.vlen_dtype(np.dtype("uint16"))
        times = h5.create_dataset("spikes/times", (3,), dtype=vf)
        units = h5.create_dataset("spikes/units", (3,), dtype=vu)
        for i in range(3):
            n = 40 + i
            t = np.sort(rng.uniform(0, 0.99, n)).astype(np.float32)
            u = rng.integers(0, 700, n).astype(np.uint16)
            times[i], units[i] = t, u
            samples.append((t, u))
        h5.create_dataset("labels", data=np.array([4, 0, 19], np.uint16))
    ds = load_shd(tmp_path, train=True, n_bins=20)
    assert len(ds) == 3 and ds.n_classes == 20
    frames, label = ds[2]
    assert frames.shape == (20, 700) and label == 19
    assert frames.sum().item() == len(samples[2][0])
    t, u = samples[0]
    f0 = ds.frames(0)
    for k in range(len(t)):  # every spike lands in its own bin and channel
        assert f0[int(np.floor(float(t[k]) * 1e6 * 20 / 1e6)), u[k]] >= 1
    with pytest.raises(InputError, match="shd_test"):
        load_shd(tmp_path, train=False)


def test_dvs_gesture_loader_reads_preprocessed_npy(tmp_path):
    folder = tmp_path / "ibmGestureTrain" / "user01_fluorescent"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for label in (0, 5):
        n = 100
        arr = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                        np.sort(rng.uniform(0, 1400, n))], 1)
        np.save(folder / f"{label}.npy", arr)
    ds = load_dvs_gesture(tmp_path, train=True, n_bins=7, downsample=4, binary=False)
    assert len(ds) == 2 and sorted(lab for _, lab in ds.items) == [0, 5]
    frames, label = ds[0]
    assert frames.shape == (7, 2, 32, 32) and frames.sum().item() == 100
    full = load_dvs_gesture(tmp_path, train=True, n_bins=7, downsample=1, binary=False)
    arr = np.load(folder / "0.npy")
    f = full.frames(0)
    x, y, p, t = arr[0].astype(float)
    assert f[int(np.floor(round(t * 1000) * 7 / 1.5e6)), int(p), int(y), int(x)] >= 1
    with pytest.raises(InputError, match="ibmGestureTest"):
        load_dvs_gesture(tmp_path, train=False)
    with pytest.raises(InputError, match="divide 128"):
        load_dvs_gesture(tmp_path, downsample=3)
