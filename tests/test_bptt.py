"""BPTT trainer and the shared training loop: learning, reproducibility, checkpoints, losses, encoders."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from toolchain.data import RateEncoder, load_digits, load_digits_spikes
from toolchain.errors import InputError
from toolchain.nn import LI, LIF, SpikingNet
from toolchain.train import (History, TrainConfig, evaluate, load_checkpoint, predict, sequence_loss, train_bptt,
                             train_stop)


def _mlp(seed=0, hidden=48, learn=False):
    torch.manual_seed(seed)
    return SpikingNet(nn.Linear(64, hidden), LIF(hidden, alpha=0.9, learn_threshold=learn, learn_leak=learn,
                                                 per_neuron=False),
                      nn.Linear(hidden, 10), LI(10, alpha=0.9))


@pytest.fixture(scope="module")
def small_digits():
    return load_digits_spikes(steps=16).subset(400, 150)


def _cfg(**kw):
    base = dict(epochs=2, batch_size=32, lr=5e-3, progress=False, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_bptt_learns_digits(small_digits):
    model = _mlp()
    before = evaluate(model, small_digits.x_test, small_digits.y_test)
    hist = train_bptt(model, small_digits, _cfg(epochs=3))
    assert isinstance(hist, History) and len(hist.epochs) == 3 and hist.trainer == "bptt-mean"
    assert hist.loss[-1] < hist.loss[0]
    assert hist.test_acc[-1] > max(0.6, before + 0.3)
    assert hist.test_acc[-1] == evaluate(model, small_digits.x_test, small_digits.y_test)


def test_same_seed_same_weights_and_resume_is_exact(small_digits, tmp_path):
    a, b = _mlp(seed=1), _mlp(seed=1)
    train_bptt(a, small_digits, _cfg())
    train_bptt(b, small_digits, _cfg())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = _mlp(seed=1)
    train_bptt(c, small_digits, _cfg(seed=5))
    assert not torch.equal(a[0].weight, c[0].weight)
    # one epoch, checkpoint, a fresh model resumes for the second epoch: identical to the straight run
    ckpt = tmp_path / "run.pt"
    d = _mlp(seed=1)
    train_bptt(d, small_digits, _cfg(epochs=1, checkpoint=str(ckpt)))
    blob = load_checkpoint(ckpt)
    assert blob["epoch"] == 1 and blob["trainer"] == "bptt-mean"
    e = _mlp(seed=99)  # different initial weights: resume must overwrite them
    hist = train_bptt(e, small_digits, _cfg(epochs=2, checkpoint=str(ckpt), resume=True))
    assert len(hist.epochs) == 2
    for pa, pe in zip(a.parameters(), e.parameters()):
        assert torch.equal(pa, pe)


def test_stop_trainer_shares_the_loop_features(small_digits, tmp_path):
    a, b = _mlp(seed=2, learn=True), _mlp(seed=2, learn=True)
    ha = train_stop(a, small_digits, _cfg(), "WTL")
    train_stop(b, small_digits, _cfg(), "WTL")
    assert ha.trainer == "stop-WTL" and ha.test_acc[-1] > 0.6
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    ckpt = tmp_path / "stop.pt"
    c = _mlp(seed=2, learn=True)
    train_stop(c, small_digits, _cfg(epochs=1, checkpoint=str(ckpt)), "WTL")
    d = _mlp(seed=3, learn=True)
    train_stop(d, small_digits, _cfg(checkpoint=str(ckpt), resume=True), "WTL")
    for pa, pd in zip(a.parameters(), d.parameters()):
        assert torch.equal(pa, pd)
    with pytest.raises(InputError, match="trainer"):
        train_bptt(_mlp(), small_digits, _cfg(checkpoint=str(ckpt), resume=True))


def test_clamps_applied_after_every_step(small_digits):
    model = _mlp(learn=True)
    with torch.no_grad():
        model[1].threshold.fill_(2e-3)
        model[1].alpha.fill_(0.999)
    train_stop(model, small_digits, _cfg(epochs=1, lr=0.5, max_batches=3), "WTL")
    assert model[1].threshold.item() >= 1e-3 and 0.0 <= model[1].alpha.item() <= 1.0


def test_sequence_losses():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(4, 6, 3, generator=g)
    lab = torch.tensor([0, 2, 1, 1])
    ce = nn.functional.cross_entropy
    assert torch.allclose(sequence_loss(y, lab, "mean"), ce(y.mean(1), lab))
    assert torch.allclose(sequence_loss(y, lab, "sum", 2), ce(y[:, 2:].sum(1), lab))
    per = sum(ce(y[:, t], lab) for t in range(6)) / 6
    assert torch.allclose(sequence_loss(y, lab, "per_step"), per)
    assert torch.equal(predict(y, 2), y[:, 2:].sum(1).argmax(-1))


def test_regularizer_term_enters_the_loss(small_digits):
    seen = {}

    def reg(model, records, out, labels):
        seen["layers"] = sorted(records)
        return out.sum() * 0 + 5.0

    h0 = train_bptt(_mlp(), small_digits, _cfg(epochs=1, max_batches=2))
    h1 = train_bptt(_mlp(), small_digits, _cfg(epochs=1, max_batches=2), regularizer=reg)
    assert seen["layers"] == ["1", "3"]
    assert abs(h1.loss[0] - h0.loss[0] - 5.0) < 1e-4


def test_static_data_with_rate_encoder_and_missing_encoder_error():
    static = load_digits().subset(200, 100)
    with pytest.raises(InputError, match="encoder"):
        train_bptt(_mlp(), static, _cfg(epochs=1))
    hist = train_bptt(_mlp(), static, _cfg(epochs=3, encoder=RateEncoder(16, "bernoulli", seed=0)))
    assert hist.test_acc[-1] > 0.5


def test_training_curve_png(tmp_path, small_digits):
    hist = train_bptt(_mlp(), small_digits, _cfg(epochs=2, max_batches=2))
    out = hist.plot(str(tmp_path / "curve.png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert History.from_dict(hist.to_dict()) == hist


def test_bad_checkpoint_file_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    np.testing.assert_equal(bad.read_bytes(), b"not a checkpoint")  # untouched
