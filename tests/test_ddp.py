"""Distributed data-parallel training (toolchain.train.distributed): 2 CPU processes with gloo train to the same
weights as one process on the same global batches (BPTT and STOP, uneven last batch, checkpoint and resume; SCA
masks with and without MaskedBatchNorm2d and the RCS regulariser, with a last batch of one sample that leaves
rank 1 idle)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from toolchain.data.base import SplitDataset
from toolchain.nn import LI, LIF, SpikingNet
from toolchain.train import TrainConfig, load_checkpoint, train_bptt, train_stop
from toolchain.train.distributed import shard_bounds, spawn_local


def _data():
    """70 training and 20 test sequences of 8 steps of 64 random spikes, 10 classes (spike rate tied to the
    class so that there is something to learn)."""
    r = np.random.default_rng(0)
    y = r.integers(0, 10, 90)
    rate = 0.1 + 0.5 * (np.arange(64)[None, :] % 10 == y[:, None])
    x = (r.random((90, 8, 64)) < rate[:, None, :]).astype(np.float32)
    return SplitDataset("ddp_toy", x[:70], y[:70], x[70:], y[70:], n_classes=10, time_major=True)


def _model(seed):
    torch.manual_seed(seed)
    return SpikingNet(nn.Linear(64, 24), LIF(24, alpha=0.9, learn_threshold=True, learn_leak=True, per_neuron=False),
                      nn.Linear(24, 10), LI(10, alpha=0.9))


def _train(kind, model, ckpt=None, epochs=2, resume=False):
    # 70 samples in global batches of 16: 4 full batches and one of 6 (3 per rank)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=5e-3, progress=False, seed=3, checkpoint=ckpt, resume=resume)
    if kind == "bptt":
        return train_bptt(model, _data(), cfg)
    return train_stop(model, _data(), cfg, variant="WTL")


def _image_data():
    """70 training and 10 test sequences of 4 steps of 1x6x6 random spike images, 10 classes."""
    r = np.random.default_rng(1)
    y = r.integers(0, 10, 80)
    rate = 0.1 + 0.5 * (np.arange(36).reshape(1, 6, 6)[None] % 10 == y[:, None, None, None])
    x = (r.random((80, 4, 1, 6, 6)) < rate[:, None]).astype(np.float32)
    return SplitDataset("ddp_img", x[:70], y[:70], x[70:], y[70:], n_classes=10, time_major=True)


def _conv_model(seed):
    from collections import OrderedDict
    from toolchain.prune.sca import MaskedConv2d
    torch.manual_seed(seed)
    return SpikingNet(OrderedDict([("conv0", MaskedConv2d(1, 16, 3, padding=1)),
                                   ("lif0", LIF((16, 6, 6), alpha=0.9, threshold=0.5)),
                                   ("flatten", nn.Flatten(1)), ("fc", nn.Linear(576, 10)), ("out", LI(10))]))


def _bn_model(seed):
    from collections import OrderedDict
    from toolchain.prune.sca import MaskedBatchNorm2d
    torch.manual_seed(seed)
    return SpikingNet(OrderedDict([("conv0", nn.Conv2d(1, 16, 3, padding=1, bias=False)),
                                   ("bn0", MaskedBatchNorm2d(16)), ("lif0", LIF((16, 6, 6), alpha=0.9)),
                                   ("flatten", nn.Flatten(1)), ("fc", nn.Linear(576, 10)), ("out", LI(10))]))


# global batches of 23: 23, 23, 23 (12 + 11 per rank) and 1 (rank 1 has no share) per epoch
_SMALL = dict(epochs=2, batch_size=23, lr=1e-2, progress=False, seed=5)


def _train_sca(model, group="conv0"):
    from toolchain.prune.sca import SCASchedule, train_sca
    sched = SCASchedule(target_sparsity=0.5, start=1, end=7, interval=2, regrow_fraction=0.5)
    hist, sca = train_sca(model, _image_data(), sched, TrainConfig(**_SMALL), trainer="bptt")
    return hist, [(e.step, e.pruned, e.regrown, e.kept, e.scores) for e in sca.history]


def _train_rcs(model, alpha=0.5):
    from toolchain.train.rcs import RCSRegulariser
    reg = RCSRegulariser(alpha=alpha) if alpha else None
    return train_bptt(model, _data(), TrainConfig(**_SMALL), loss="mean", regularizer=reg)


def _worker_stats(rank, out):
    """Every rank: SCA (BPTT, masked conv without batch norm) and BPTT with the RCS regulariser."""
    model = _conv_model(seed=20 + rank)
    hist, events = _train_sca(model)
    torch.save({"state": model.state_dict(), "events": events, "history": hist.to_dict()},
               f"{out}/sca_rank{rank}.pt")
    model = _bn_model(seed=40 + rank)
    hist, events = _train_sca(model)
    torch.save({"state": model.state_dict(), "events": events, "history": hist.to_dict()},
               f"{out}/scabn_rank{rank}.pt")
    model = _model(seed=30 + rank)
    hist = _train_rcs(model)
    torch.save({"state": model.state_dict(), "history": hist.to_dict()}, f"{out}/rcs_rank{rank}.pt")


def _worker(rank, out):
    """Every rank: BPTT and STOP for 2 epochs (rank 0 checkpoints), then BPTT 1 epoch + resume for the 2nd."""
    for kind in ("bptt", "stop"):
        model = _model(seed=rank)  # different initial weights per rank: rank 0's are broadcast
        hist = _train(kind, model, f"{out}/{kind}.pt")
        torch.save({"state": model.state_dict(), "history": hist.to_dict()}, f"{out}/{kind}_rank{rank}.pt")
    model = _model(seed=7 + rank)
    _train("bptt", model, f"{out}/run.pt", epochs=1)
    model2 = _model(seed=11 + rank)
    _train("bptt", model2, f"{out}/run.pt", epochs=2, resume=True)
    torch.save({"state": model2.state_dict()}, f"{out}/resume_rank{rank}.pt")
    _worker_stats(rank, out)  # same spawn: no second process start-up


def _assert_close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6), (k, float((a[k] - b[k]).abs().max()))


def test_shard_bounds_cover_the_batch_once():
    for n in range(0, 9):
        for w in (1, 2, 3):
            parts = [shard_bounds(n, r, w) for r in range(w)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(parts[i][1] == parts[i + 1][0] for i in range(w - 1))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


def test_two_gloo_processes_equal_one_process(tmp_path):
    spawn_local(_worker, 2, args=(str(tmp_path),))
    for kind in ("bptt", "stop"):
        single = _model(seed=0)
        hist = _train(kind, single)
        r0 = torch.load(tmp_path / f"{kind}_rank0.pt")
        r1 = torch.load(tmp_path / f"{kind}_rank1.pt")
        _assert_close(r0["state"], single.state_dict())
        _assert_close(r1["state"], r0["state"])
        # the weights moved (the test cannot pass by training nothing)
        assert not torch.allclose(single.state_dict()["0.weight"], _model(seed=0).state_dict()["0.weight"])
        # logging: the loss and accuracy of the global batches, as one process reports them
        for e0, e in zip(r0["history"]["epochs"], hist.epochs):
            assert e0["loss"] == pytest.approx(e["loss"], rel=1e-5) and e0["train_acc"] == e["train_acc"]
            assert e0["test_acc"] == e["test_acc"]
        assert load_checkpoint(tmp_path / f"{kind}.pt")["epoch"] == 2  # written by rank 0
    # resume from rank 0's checkpoint after epoch 1 (fresh models with other weights): the straight run's weights
    straight = _model(seed=7)
    _train("bptt", straight)
    r0 = torch.load(tmp_path / "resume_rank0.pt")["state"]
    r1 = torch.load(tmp_path / "resume_rank1.pt")["state"]
    _assert_close(r0, straight.state_dict())
    _assert_close(r1, r0)
    assert not (tmp_path / "run.pt.tmp").exists()
    assert np.isfinite(load_checkpoint(tmp_path / "run.pt")["history"]["epochs"][-1]["loss"])
    _check_stats(tmp_path)


def _check_stats(tmp_path):
    # SCA: the same prune/regrow events (hence masks) and weights as one process after 12 steps (4 updates);
    # without batch norm (masked conv) and with MaskedBatchNorm2d (statistics and running averages of the
    # global batch; the state dict holds the running averages)
    for name, build in (("sca", _conv_model(seed=20)), ("scabn", _bn_model(seed=40))):
        _check_sca(tmp_path, name, build)
    # RCS: the maximum over the correct samples of the global batch (not of each share)
    single = _model(seed=30)
    hist = _train_rcs(single)
    plain = _model(seed=30)
    _train_rcs(plain, alpha=0.0)
    r0, r1 = (torch.load(tmp_path / f"rcs_rank{r}.pt") for r in (0, 1))
    _assert_close(r0["state"], single.state_dict())
    _assert_close(r1["state"], r0["state"])
    assert not torch.allclose(single.state_dict()["0.weight"], plain.state_dict()["0.weight"], atol=1e-4)
    for e0, e in zip(r0["history"]["epochs"], hist.epochs):
        assert e0["loss"] == pytest.approx(e["loss"], rel=1e-5) and e0["train_acc"] == e["train_acc"]


def _check_sca(tmp_path, name, single):
    hist, events = _train_sca(single)
    r0, r1 = (torch.load(tmp_path / f"{name}_rank{r}.pt") for r in (0, 1))
    # masks equal; the ranked scores are the global batches' (float32 membranes; per-share sums are ~1e-3 off)
    for ev in (r0["events"], r1["events"]):
        assert [e[:4] for e in ev] == [e[:4] for e in events]
        for e0, e in zip(ev, events):
            for g in e[4]:
                assert np.allclose(e0[4][g], e[4][g], rtol=1e-6, atol=0)
    assert [e[0] for e in events] == [1, 3, 5, 7] and list(events[-1][3].values()) == [8]
    assert sum(len(v) for e in events for v in e[2].values()) > 0  # regrowth happened (it used the gradients)
    _assert_close(r0["state"], single.state_dict())
    _assert_close(r1["state"], r0["state"])
    for e0, e in zip(r0["history"]["epochs"], hist.epochs):
        assert e0["loss"] == pytest.approx(e["loss"], rel=1e-5) and e0["train_acc"] == e["train_acc"]


def test_fit_moves_batches_to_the_model_device():
    """The loop hands the batch function tensors on the device of the model's parameters (here 'cpu' given
    explicitly; on a GPU the same code path moves them to cuda)."""
    from toolchain.train.loop import fit
    model = _model(seed=0).to(torch.device("cpu"))
    seen = []

    def batch_fn(m, xb, yb):
        seen.append((xb.device, yb.device))
        out = m(xb)
        loss = nn.functional.cross_entropy(out.sum(1), yb)
        loss.backward()
        return float(loss), out.sum(1).detach()

    hist = fit(model, _data(), TrainConfig(epochs=1, batch_size=32, progress=False), batch_fn,
               model.parameters(), trainer="t")
    assert seen and all(a == torch.device("cpu") and b == torch.device("cpu") for a, b in seen)
    assert np.isfinite(hist.loss[0])


def test_snnc_train_runs_one_process_and_names_bad_keys(tmp_path, capsys):
    from toolchain.cli.main import main
    cfg = tmp_path / "train.toml"
    cfg.write_text(f'[task]\nsteps = 4\ntrain_samples = 64\ntest_samples = 20\nepochs = 1\nhidden = 8\n'
                   f'[output]\nmodel = "{(tmp_path / "m.pt").as_posix()}"\n'
                   f'checkpoint = "{(tmp_path / "c.pt").as_posix()}"\n')
    assert main(["train", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "training on 1 process(es)" in out and "RESULT train_test_acc" in out
    assert set(torch.load(tmp_path / "m.pt")) >= {"0.weight", "2.weight"}
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 1
    cfg.write_text("[task]\nlayers = 3\n")
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task.layers" in err[0]
