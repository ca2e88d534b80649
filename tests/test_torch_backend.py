"""The torch backend of the reference simulator (toolchain.sim.torch_backend) is bit-exact with the numpy one on
the test corpus — every spike, u and v of every group at every step — and is the engine of IntegerNet; the LIF
update both run is the one definition in toolchain.fixedpoint."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from toolchain import fixedpoint as fx
from toolchain.errors import InputError
from toolchain.ir.storage import Csr, Dense
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
from toolchain.sim import torch_backend as TB
from toolchain.sim.reference import simulate
from toolchain.testing import (int_inputs, int_program, make_active, random_path_case, random_spike_array,
                               random_spiking_model)

torch.set_num_threads(1)
LAVA_DL = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def assert_bit_exact(p, x, steps=None, device="cpu", **kw):
    """numpy vs torch backend, every group recorded: every spike, u and v at every step, output, steps_run."""
    ref = simulate(p, x, steps=steps, record=True, **kw)
    got = simulate(p, x, steps=steps, record=True, backend="torch", device=device, **kw)
    assert got.backend == "torch"
    mm = ref.first_mismatch(got)
    assert mm is None, str(mm)
    for g in p.groups:
        for f in ("spikes", "u", "v"):
            a, b = getattr(ref, f)[g], getattr(got, f)[g]
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), (f, g)
    assert np.array_equal(ref.output, got.output) and np.array_equal(ref.steps_run, got.steps_run)
    return ref


# --------------------------------------------------------------------------------- the corpus of test_reference_sim
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(16))
def test_torch_backend_equals_numpy_on_random_programs(seed: int, device: str) -> None:
    """The random programs of tests/test_reference_sim.py's path test: storages, recurrence, skips, graded
    inputs (3, 8, 24 bits), delays, reset modes, extreme parameters (wraps and saturation), readouts, v_init,
    all sign modes and weight widths, weight exponents, low and high activity, batches 3 and 10."""
    p, x = random_path_case(seed)
    ref = assert_bit_exact(p, x, 18, device)
    assert any(ref.spikes[g].any() for g in p.groups if p.groups[g].spiking) or \
        not any(g.spiking for g in p.groups.values())
    assert all(ref.v[g].any() for g in p.groups)


@pytest.mark.parametrize("kwargs", [
    dict(recurrent=True, skip=True, max_delay=3, storage="mixed", reset_mode="mixed"),
    dict(extreme=True, graded_bits=8, weight_exp=(-4, 6), storage="csr", reset_mode="subtract"),
    dict(extreme=True, recurrent=True, sign_modes=("mixed", "excitatory", "inhibitory"), weight_bits=(3, 6, 8),
         weight_exp=(-2, 7), max_delay=2, readout=True),
    dict(graded_bits=24, weight_exp=(5, 7), storage="structured", reset_mode="zero", recurrent=True),
    dict(v_init=True, extreme=True, recurrent=True),
])
def test_torch_backend_equals_numpy_on_integer_net_corpus(kwargs) -> None:
    """The programs of tests/test_nn_integer.py (24-bit graded sums beyond int32, exponents up to 7)."""
    p = int_program((10, 12, 8, 5), seed=1, **kwargs)
    x = int_inputs(p, batch=3, steps=30, seed=11)
    ref = assert_bit_exact(p, x)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0


@pytest.mark.parametrize("kind,neuron,reset,readout", [("ff", "cuba", "zero", "li"), ("rec", "lif", "zero",
                                                                                    "spiking"),
                                                       ("conv", "cuba", "subtract", "spiking")])
def test_torch_backend_on_compiled_models(kind, neuron, reset, readout) -> None:
    """Programs compiled from torch models (conv storage, readouts, bias-onset v_init)."""
    from toolchain.nn import IntegerNet
    model, shape = random_spiking_model(kind, seed=5, neuron=neuron, reset=reset, readout=readout)
    net = IntegerNet.from_model(model, "loihi2", 1e-3, shape)
    x = random_spike_array(4, 25, shape, 0.3, seed=6)
    ref = assert_bit_exact(net.program, x)
    assert ref.spikes[next(iter(net.program.groups))].mean() > 0.02


def test_torch_backend_bias_ports_and_periodic_reset() -> None:
    """A bias input port (per sample, and per step) replacing a group's bias, and lava-dl's periodic reset."""
    p = int_program((30, 12, 6), seed=3, recurrent=True)
    g0, g1 = p.groups["g0"], p.groups["g1"]
    groups = [dataclasses.replace(g0, reset_interval=4, reset_offset=1), dataclasses.replace(g1, reset_interval=3)]
    ports = list(p.inputs) + [InputPort("b", (g0.size,), kind="bias", target="g0")]
    q = Program(groups, list(p.synapses), ports, output="g1")
    r = np.random.default_rng(0)
    x = int_inputs(q, 4, 15, rate=0.1, seed=1)
    for bias in (r.integers(-4096, 4096, (4, g0.size)), r.integers(-300, 300, (4, 15, g0.size))):
        ref = assert_bit_exact(q, {"in": x, "b": bias})
        assert ref.spikes["g0"].any()


@pytest.mark.parametrize("delay", [0, 2])
def test_torch_backend_graded_sums_beyond_int32(delay: int) -> None:
    """24-bit payloads whose Dense/Sparse sums (delay 0) or DelayDense products (delay 2) leave int32: Lava's
    wraps, before and after the shift, in float64 products."""
    r = np.random.default_rng(11 + delay)
    w = r.integers(-254, 255, (4, 32))
    g = NeuronGroup("a", (4,), du=100, dv=50, vth=300, bias_mant=0, bias_exp=0)
    for storage in (Dense(w), Csr.from_dense(w)):
        for e in (-28, -30, 0, 3):
            p = Program([g], [SynapseGroup("s", "in", "a", storage, weight_exp=e, delay=delay)],
                        [InputPort("in", (32,), num_message_bits=24)], output="a")
            x = r.integers(2 ** 23, 2 ** 24, (3, 6, 32)).astype(np.int32)
            assert_bit_exact(p, x, 9)


def test_torch_backend_early_exit() -> None:
    """Samples leaving the batch mid-run: every record equals the numpy simulator's (zero after the exit)."""
    p = int_program((40, 16, 8), seed=5, recurrent=True, max_delay=3)
    x = int_inputs(p, 12, 24, rate=0.1, seed=5)

    def exit_fn(t, acc):
        stop = np.zeros(acc.shape[0], bool)
        if t in (3, 9):
            stop[: max(1, acc.shape[0] // 3)] = True
        if t == 15:
            stop[int(np.argmax(acc.sum(axis=1)))] = True  # by the accumulated output
        return stop

    ref = assert_bit_exact(p, x, early_exit=exit_fn)
    assert ref.steps_run.min() == 4 and ref.steps_run.max() == 24 and len(set(ref.steps_run)) >= 3
    assert_bit_exact(p, x, early_exit=lambda t, acc: np.ones(acc.shape[0], bool) if t == 2 else
                     np.zeros(acc.shape[0], bool))  # every sample stops


def test_integer_net_runs_the_torch_backend() -> None:
    """IntegerNet is a thin module over the backend: same plan type, same records as simulate(backend="torch")."""
    from toolchain.nn import IntegerNet
    p = int_program((20, 10, 5), seed=2, recurrent=True, max_delay=1)
    x = int_inputs(p, 3, 12, seed=2)
    net = IntegerNet(p)
    assert isinstance(net._plan, TB.Plan) and net.device == torch.device("cpu")
    a = net.run(x, record=True)
    b = simulate(p, x, record=True, backend="torch")
    assert a.first_mismatch(b) is None and a.backend == b.backend == "torch"
    y, rec = net(torch.as_tensor(x), record=True)
    assert np.array_equal(rec["g0"]["u"].numpy(), b.u["g0"].astype(np.int64))


def test_plan_shares_the_reference_weights_and_product_dtype() -> None:
    """The plan's weights are the reference simulator's compiled ones (Lava's clip and truncation); products are
    float32 below the 2^24 bound, float64 above; the wrap-free condition is the reference's float-path one."""
    from toolchain.sim import reference as R
    p = int_program((12, 6, 4), seed=0, sign_modes=("inhibitory",), weight_bits=(4,), extreme=True)
    pl = TB.plan(p)
    for s, ts in zip(p.synapses, pl.syns):
        c = R._compile_synapse(p, s)
        assert np.array_equal(ts.w_t.numpy().T, np.asarray(c.w_eff)) and ts.w_t.dtype == torch.float32
        assert (ts.acc_bound, ts.out_bound) == (c.acc_bound, c.out_bound)
    g24 = int_program((10, 4), seed=0, graded_bits=24)
    assert TB.plan(g24).syns[0].w_t.dtype == torch.float64
    bound = {g: 0 for g in p.groups}
    for s in p.synapses:
        bound[s.dst] += R._compile_synapse(p, s).out_bound
    assert [g.wrap_free for g in pl.groups] == [bound[g] < R._FAST_LIF_BOUND for g in p.groups]


def test_torch_backend_errors() -> None:
    p = int_program((10, 4), seed=0)
    with pytest.raises(InputError, match="numpy' or 'torch"):
        simulate(p, int_inputs(p, 1, 3), backend="jax")
    with pytest.raises(InputError, match="shape"):
        simulate(p, np.zeros((1, 3, 9), np.int32), backend="torch")
    with pytest.raises(InputError, match="integers"):
        simulate(p, np.full((1, 3, 10), 0.5), backend="torch")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            simulate(p, int_inputs(p, 1, 3), backend="torch", device="cuda")


# ------------------------------------------------------------------------------ the one LIF update definition
def test_lif_update_is_one_definition_for_numpy_and_torch() -> None:
    """fixedpoint.lif_step (numpy int32, Lava's parameters) and lif_update on float64 and int64 tensors give the
    same u, v, spikes on edge-heavy random states (wraps, saturation, du = -1, dv = 4096)."""
    r = np.random.default_rng(0)
    n = 50000
    edges = np.array([0, 1, -1, 2 ** 23, 2 ** 23 + 1, -2 ** 23, -2 ** 23 - 1, 2 ** 24, 3 * 2 ** 23, -(2 ** 31),
                      2 ** 31 - 1])

    def ints():
        out = r.integers(-(2 ** 31), 2 ** 31, size=n)
        pick = r.random(n) < 0.4
        out[pick] = np.clip(r.choice(edges, pick.sum()) + r.integers(-2, 3, pick.sum()), -(2 ** 31), 2 ** 31 - 1)
        return out.astype(np.int32)

    u, v, a = ints(), ints(), ints()
    du, dv = r.choice([-1, 0, 1, 4095, 999], n), r.choice([0, 1, 4095, 4096, 77], n)
    vth, bm, be = r.choice([0, 1, 2 ** 17, 5000], n), r.integers(-4096, 4096, n), r.integers(0, 8, n)
    for subtract in (False, True):
        want = fx.lif_step(u, v, a, du, dv, vth, bm, be, "subtract" if subtract else "zero")
        assert want[0].dtype == want[1].dtype == np.int32 and want[2].dtype == bool
        par = [fx.decay_factor(du + 1), fx.decay_factor(dv), fx.effective_bias(bm, be), fx.effective_threshold(vth)]
        for dt in (torch.float64, torch.int64):
            T = lambda z: torch.as_tensor(np.asarray(z).astype(np.float64 if dt == torch.float64 else np.int64))  # noqa
            got = fx.lif_update(T(u), T(v), T(a), torch.as_tensor(par[0]), torch.as_tensor(par[1]), T(par[2]),
                                T(par[3]), subtract)
            for w, g in zip(want, got):
                assert np.array_equal(g.numpy().astype(np.int64), w.astype(np.int64))
        assert (np.abs(want[1]) == fx.V_MAX).sum() > 100 and want[2].sum() > 100


def test_decay_factor_equals_lava_shift() -> None:
    """trunc(x · (4096 − d)/4096) in float64 equals Lava's sign(p)·(|p| >> 12) for int32 x, d in [0, 4096]."""
    r = np.random.default_rng(1)
    x = np.concatenate([r.integers(-(2 ** 31), 2 ** 31, 20000), np.arange(-9000, 9000),
                        [-(2 ** 31), 2 ** 31 - 1, 2 ** 23, -(2 ** 23)]]).astype(np.int32)
    for d in list(range(0, 4097, 13)) + [1, 4095, 4096]:
        assert np.array_equal(np.trunc(x * fx.decay_factor(d)).astype(np.int64), fx.decay_rtz(x, d).astype(np.int64))


def test_cli_simulate_backend_torch(tmp_path, capsys) -> None:
    """``snnc simulate --backend torch`` writes what the numpy reference computes; a missing CUDA is one error
    line naming the device, nothing written."""
    from toolchain.cli.main import main
    p = int_program((8, 6, 4), seed=3, recurrent=True)
    build = tmp_path / "build"
    p.save(build)
    x = int_inputs(p, 3, 7, seed=1)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["simulate", str(build), "--input", str(tmp_path / "x.npy"), "--steps", "9", "-o", str(out),
                 "--record", "--backend", "torch", "--device", "cpu"]) == 0
    ref = simulate(p, x, steps=9, record=True)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["spikes"], ref.output)
        for g in p.groups:
            for f in ("u", "v", "spikes"):
                np.testing.assert_array_equal(z[f"{f}/{g}"], getattr(ref, f)[g])
    assert "torch: 3 samples x 9 steps" in capsys.readouterr().out
    if not torch.cuda.is_available():
        bad = tmp_path / "cuda.npz"
        assert main(["simulate", str(build), "--input", str(tmp_path / "x.npy"), "-o", str(bad), "--backend",
                     "torch", "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and "CUDA is not available" in err and err.count("\n") == 1
        assert not bad.exists()


@pytest.mark.parametrize("graded_bits", [0, 24])
def test_torch_backend_sparse_weights_held_sparse(graded_bits: int) -> None:
    """Sparse storage below 10% density is held as a sparse CSR tensor (as the numpy simulator keeps it sparse):
    same records, binary and 24-bit graded inputs (Lava's int32 wrap of the graded sum before the shift)."""
    p = int_program((200, 40, 30, 8), seed=6, storage="mixed", density=0.05, recurrent=True,
                    graded_bits=graded_bits, weight_exp=(-9, 0) if graded_bits else (0, 2))
    pl = TB.plan(p)
    held = [s.w_csr is not None for s in pl.syns]
    assert any(held) and all(s.w_t.shape == (s.w_csr.shape[1], s.w_csr.shape[0]) for s in pl.syns if s.w_csr
                             is not None)
    x = int_inputs(p, 4, 14, rate=0.3, seed=6)
    p = make_active(p, x, steps=14)
    ref = assert_bit_exact(p, x, 14)
    assert ref.spikes["g0"].any()


@pytest.mark.skipif(not LAVA_DL.is_dir(), reason="../shared/data/lava-dl is not present")
@pytest.mark.parametrize("net", ["mnist_mlp/trained_mnist_network.net", "tinynet/tiny.net",
                                 pytest.param("pilotnet_lif/network.net", marks=pytest.mark.slow)])
def test_torch_backend_on_lava_dl_networks(net: str) -> None:
    """Intel's lava-dl netx files (dense MLP; tinynet's conv with a bias input; PilotNet: conv layers held as sparse
    CSR, an image bias port, periodic reset) imported and run on both backends."""
    import warnings
    from toolchain.cli.simulate import random_input
    from toolchain.netx_io.compile import compile_netx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = compile_netx(LAVA_DL / net, "loihi2")
    prog = prog[0] if isinstance(prog, tuple) else prog
    ref = assert_bit_exact(prog, random_input(prog, 2, 8, seed=0, rate=0.3), 8)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0


def test_every_simulator_runs_the_one_lif_definition(monkeypatch) -> None:
    """The numpy float path, the numpy int32 emulation, the torch backend and IntegerNet all call
    fixedpoint.lif_subthreshold / lif_fire (no second copy of the update left to drift): replacing the definition
    changes every one of them."""
    from toolchain.nn import IntegerNet
    p = int_program((12, 8, 4), seed=1, recurrent=True)
    x = int_inputs(p, 2, 6, seed=1)
    calls = {"sub": 0, "fire": 0}
    sub, fire = fx.lif_subthreshold, fx.lif_fire

    def counting_sub(*a, **k):
        calls["sub"] += 1
        return sub(*a, **k)

    def counting_fire(*a, **k):
        calls["fire"] += 1
        return fire(*a, **k)

    monkeypatch.setattr(fx, "lif_subthreshold", counting_sub)
    monkeypatch.setattr(fx, "lif_fire", counting_fire)
    for run in (lambda: simulate(p, x), lambda: simulate(p, x, force_exact=True),
                lambda: simulate(p, x, backend="torch"), lambda: IntegerNet(p)(x)):
        calls.update(sub=0, fire=0)
        run()
        assert calls["sub"] >= 6 and calls["fire"] >= 6, calls


def test_integer_net_to_device() -> None:
    """IntegerNet.to(device) moves the plan (CPU here; CUDA where present); an unavailable device is one error."""
    from toolchain.nn import IntegerNet
    p = int_program((10, 6, 3), seed=0)
    x = int_inputs(p, 2, 5, seed=0)
    net = IntegerNet(p).to("cpu")
    assert net.device == torch.device("cpu") and net.run(x).first_mismatch(simulate(p, x)) is None
    for dev in DEVICES[1:]:
        assert net.to(dev).device.type == dev and net.run(x).first_mismatch(simulate(p, x)) is None
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            net.to("cuda")


def test_reduced_matmul_precision_keeps_graded_products_exact() -> None:
    """Under float32 matmul precision "high" (TF32) or "medium" (bfloat16) the plan computes graded products with
    payloads wider than the operands keep in float64; binary products stay float32 (exact there)."""
    p8 = int_program((10, 4), seed=0, graded_bits=8)
    p12 = int_program((10, 4), seed=0, graded_bits=12)  # sums below 2^24: float32 at full precision
    pb = int_program((10, 4), seed=0)
    old = torch.get_float32_matmul_precision()
    try:
        for prec, want in (("highest", (torch.float32, torch.float32)), ("high", (torch.float32, torch.float64)),
                           ("medium", (torch.float32, torch.float64))):
            torch.set_float32_matmul_precision(prec)
            assert (TB.plan(p8).syns[0].w_t.dtype, TB.plan(p12).syns[0].w_t.dtype) == want, prec
            assert TB.plan(pb).syns[0].w_t.dtype == torch.float32
            x = int_inputs(p12, 2, 6, seed=1)
            assert_bit_exact(p12, x)
    finally:
        torch.set_float32_matmul_precision(old)
