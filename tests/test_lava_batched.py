"""Batched Lava runs (``run_lava(..., batch_mode="batched")``, :func:`toolchain.backends.lava.build_batched_network`):
B samples in one Lava process graph, bit-exact per sample with the reference simulator — every spike, u and v of
every group at every step of every sample. Small programs, batches of 3-4, few steps (each Lava network costs a
few seconds of process start-up on two cores)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("lava.proc.lif.process")

from netx_files import conv_net  # noqa: E402
from toolchain.backends import lava as lava_backend  # noqa: E402
from toolchain.backends.lava import batch_blocker, batch_plan, run_lava  # noqa: E402
from toolchain.errors import ToolchainError  # noqa: E402
from toolchain.ir.storage import Csr, Dense  # noqa: E402
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import int_inputs, int_program, make_active  # noqa: E402


def assert_batched_bit_exact(program: Program, x, steps=None, max_batch=None, active: bool = True) -> list:
    """Every spike, u and v of every group and sample equal to the reference, run as batched Lava networks.
    Returns the networks built."""
    ref = simulate(program, x, steps=steps, record=True)
    if active:
        silent = [g for g, grp in program.groups.items() if grp.spiking and not ref.spikes[g].any()]
        assert not silent, f"groups {silent} never spike: the comparison would show nothing"
    built = []
    real = lava_backend.build_batched_network

    def counting(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    lava_backend.build_batched_network = counting
    try:
        lav = run_lava(program, x, steps=steps, record=True, batch_mode="batched", max_batch=max_batch)
    finally:
        lava_backend.build_batched_network = real
    assert built, "no batched network was built"
    mm = ref.first_mismatch(lav)
    assert mm is None, f"reference vs batched Lava: first mismatch at {mm}"
    assert lav.batch == ref.batch and all(g in lav.u and g in lav.v and g in lav.spikes for g in program.groups)
    return built


def _processes(net) -> tuple:
    """(LIF processes, synapse processes) of a built network."""
    lifs = {id(p) for p in net.neurons.values()}
    syns = {id(q) for p in net.synapses.values() for q in (p if isinstance(p, list) else [p])}
    return len(lifs), len(syns)


@pytest.mark.parametrize("gemm", [True, False])
def test_pooled_layout_split_matrices_and_right_shifts(monkeypatch, gemm: bool) -> None:
    """The pooled layout (``BATCH_POOL``): groups of one LIF class share a process, synapse groups with the same
    source, destination pool and parameters share a synapse process — our ``BatchedSynapses`` (``BATCH_GEMM``,
    never split) or Lava's ``Sparse``, whose big matrices are split by rows (here every matrix of two synapses
    or more, into up to 3 parts); groups into the same destination with a right shift (``weight_exp < 0``:
    feed-forward plus recurrent) stay in separate processes. Bit-exact, and the process counts are those of the
    layout."""
    from toolchain.backends.lava_procs.batched_synapses import BatchedSynapses
    monkeypatch.setattr(lava_backend, "BATCH_GEMM", gemm)
    monkeypatch.setattr(lava_backend, "SPLIT_SYNAPSES", 2)
    monkeypatch.setattr(lava_backend, "SPLIT_MAX_PARTS", 3)
    x = None
    split = 1 if gemm else 3
    for wexp, expect_syn in ((0, 2 * split), (-2, 3 * split)):
        # zero reset everywhere: one pool; in -> g0 (one matrix), g0 -> g1, g1 -> g2 and the recurrent g0 -> g0,
        # g1 -> g1 from the pool into the pool: one matrix with weight_exp 0, two with a right shift (g1 gets
        # g0 -> g1 and g1 -> g1); every Sparse matrix split in 3
        p = int_program((7, 6, 5, 4), seed=31, recurrent=True, weight_exp=(wexp, wexp))
        x = int_inputs(p, 3, 10, rate=0.4, seed=4) if x is None else x
        net = assert_batched_bit_exact(make_active(p, x), x)[0]
        assert _processes(net) == (1, expect_syn)
        assert all(isinstance(q, BatchedSynapses) == gemm for q in net.synapses.values())
        if gemm:  # binary spikes, 8-bit weights: row sums far below 2^24, one float32 GEMM per block
            assert {q.proc_params["dtype"] for q in net.synapses.values()} == {"float32"}
            assert {b[3] for q in net.synapses.values() for b in q.proc_params["blocks"]} == {"dense"}
    if not gemm:
        return
    # per group and per synapse group (the layout before pooling), and mixed reset modes: several pools
    p = int_program((7, 6, 5, 4), seed=32, recurrent=True, reset_mode="mixed")
    x = int_inputs(p, 3, 10, rate=0.4, seed=5)
    pools = len({lava_backend._lif_class(lava_backend._lava(), n, g)[0] for n, g in p.groups.items()})
    assert pools == 2
    net = assert_batched_bit_exact(make_active(p, x), x)[0]
    assert _processes(net)[0] == 2
    monkeypatch.setattr(lava_backend, "BATCH_POOL", False)
    net = assert_batched_bit_exact(make_active(p, x), x)[0]
    assert _processes(net) == (len(p.groups), len(p.synapses))


# Option sets of toolchain.testing.int_program that cover every batched path: dense and sparse storage
# (block-diagonal Sparse, binary sources through the mat-vec), recurrence, skip connections, graded input, delays
# (DelaySparse), zero/subtract reset, per-neuron parameters, saturating parameters, readouts, all sign modes,
# narrow weights and weight exponents, initial voltages.
CASES = [
    dict(storage="dense", per_neuron=True),
    dict(storage="csr", density=0.5, recurrent=True, reset_mode="mixed", per_neuron=True, v_init=True),
    dict(storage="structured", skip=True, graded_bits=5, readout=True,
         sign_modes=("mixed", "excitatory", "inhibitory")),
    dict(storage="mixed", max_delay=3, graded_bits=16, weight_bits=(3, 8), weight_exp=(-3, 2)),
    dict(storage="dense", max_delay=1, recurrent=True, extreme=True, weight_exp=(-8, 7), reset_mode="subtract"),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_batched_programs_bit_exact(case: int) -> None:
    opts = CASES[case]
    p = int_program((7, 6, 5, 4), seed=case, **opts)
    x = int_inputs(p, 3, 10, rate=0.4, seed=case)
    assert_batched_bit_exact(make_active(p, x, saturate=opts.get("extreme", False)), x)


def test_batched_in_chunks_and_default_mode_is_batched() -> None:
    """A batch of 4 in two networks of 2 (``max_batch``), and ``run_lava``'s default ("auto") builds batched
    networks for a batch: same results as one network per sample."""
    p = int_program((6, 5, 4), seed=21, recurrent=True)
    x = int_inputs(p, 4, 8, rate=0.4, seed=2)
    assert batch_plan(p, 4, "batched", max_batch=2) == [(0, 2, True), (2, 4, True)]
    assert_batched_bit_exact(p, x, max_batch=2)
    assert batch_plan(p, 4) == [(0, 4, True)]
    np.testing.assert_array_equal(run_lava(p, x[:2]).output, run_lava(p, x[:2], batch_mode="per_sample").output)


def test_graded_sums_beyond_int32_batched_and_delayed_ones_refused() -> None:
    """Graded 24-bit payloads whose row sums leave int32: Lava's Sparse wraps the int32 dot product before the
    shift in every copy (batched, exact); with a delay, DelaySparse and DelayDense would wrap differently, so
    the batched mode refuses and "auto" runs one network per sample with a warning."""
    r = np.random.default_rng(3)
    w = r.integers(-254, 255, (3, 60))
    x = r.integers(2 ** 23, 2 ** 24, (3, 4, 60)).astype(np.int32)

    def prog(delay: int) -> Program:
        g = NeuronGroup("a", (3,), du=4095, dv=4095, vth=2 ** 17 - 1, bias_mant=0, bias_exp=0)
        return Program([g], [SynapseGroup("s", "in", "a", Csr.from_dense(w) if not delay else Dense(w),
                                          weight_exp=-3, delay=delay)],
                       [InputPort("in", (60,), num_message_bits=24)], output="a")

    net = assert_batched_bit_exact(prog(0), x, steps=4, active=False)[0]
    assert type(net.synapses["s"]).__name__ == "Sparse"  # row sums >= 2^31: Lava's Sparse, not BatchedSynapses
    delayed = prog(2)
    assert "synapse group 's'" in batch_blocker(delayed)
    with pytest.raises(ToolchainError, match="cannot run this program batched on Lava: synapse group 's'"):
        run_lava(delayed, x[:2], steps=6, batch_mode="batched")
    with pytest.warns(UserWarning, match="running one network per sample"):
        lav = run_lava(delayed, x[:2], steps=6, record=True)
    assert simulate(delayed, x[:2], steps=6, record=True).first_mismatch(lav) is None


def test_gemm_float64_csr_blocks_and_float32_bound(monkeypatch) -> None:
    """``BatchedSynapses`` with 16-bit graded input: row sums up to ~3e8, beyond float32's exact 2^24 but below
    2^31, so the GEMM runs in float64 — bit-exact, also as scipy CSR x dense int32 (``GEMM_MIN_DENSITY`` above 1
    forces it). The bound matters: forced to float32, the same run differs from the reference."""
    from toolchain.backends.lava_procs import batched_synapses as bs
    assert bs.exact_float_dtype(2 ** 24 - 1) == "float32" and bs.exact_float_dtype(2 ** 24) == "float64"
    with pytest.raises(ValueError, match="2\\^53"):
        bs.exact_float_dtype(2 ** 53)
    r = np.random.default_rng(8)
    w = r.integers(-254, 255, (5, 40))
    x = r.integers(2 ** 15, 2 ** 16, (3, 5, 40)).astype(np.int32)
    g = NeuronGroup("a", (5,), du=4095, dv=4095, vth=2 ** 17 - 1, bias_mant=0, bias_exp=0)
    p = Program([g], [SynapseGroup("s", "in", "a", Csr.from_dense(w))],
                [InputPort("in", (40,), num_message_bits=16)], output="a")
    assert 2 ** 24 < lava_backend._row_abs_bound(p, p.synapses[0]) < 2 ** 31
    for density, mode in ((0.125, "dense"), (2.0, "csr")):
        monkeypatch.setattr(lava_backend, "GEMM_MIN_DENSITY", density)
        proc = assert_batched_bit_exact(p, x, active=False)[0].synapses["s"]
        assert isinstance(proc, bs.BatchedSynapses) and proc.proc_params["dtype"] == "float64"
        assert [b[3] for b in proc.proc_params["blocks"]] == [mode]
    monkeypatch.setattr(lava_backend, "GEMM_MIN_DENSITY", 0.125)
    monkeypatch.setattr(bs, "exact_float_dtype", lambda bound: "float32")
    ref = simulate(p, x, record=True)
    assert ref.first_mismatch(run_lava(p, x, record=True, batch_mode="batched")) is not None


def test_conv_bias_port_and_periodic_reset_batched(tmp_path) -> None:
    """A netx conv network (Conv storage -> block-diagonal Sparse of the unrolled kernel), fed through a bias
    port whose frame changes over time (``bias_mant`` set before each step), with LIFReset: batch of 3."""
    from toolchain.netx_io import load_netx
    rng = np.random.default_rng(5)
    p = load_netx(conv_net(tmp_path / "c.net", rng), reset_interval=5, reset_offset=2)
    assert any(s.weight.kind == "conv" for s in p.synapses) and p.inputs[0].kind == "bias"
    x = rng.integers(0, 80, (3, 9, 8, 6, 4)).astype(np.int32)
    x[:, 4:] = rng.integers(0, 80, (3, 1, 8, 6, 4))  # the frame changes at step 4
    ref = simulate(p, x, record=True)
    assert all(ref.spikes[g].sum() > 0 for g in list(p.groups)[:3])
    assert_batched_bit_exact(p, x, active=False)


def test_batch_plan_modes_and_budget() -> None:
    p = int_program((5, 4, 3), seed=1)
    assert batch_plan(p, 1) == [(0, 1, False)]                      # auto: one sample, one network
    assert batch_plan(p, 3, "per_sample") == [(0, 1, False), (1, 2, False), (2, 3, False)]
    assert batch_plan(p, 1, "batched") == [(0, 1, True)]
    assert batch_plan(p, 7, "batched", max_batch=3) == [(0, 2, True), (2, 5, True), (5, 7, True)]  # balanced
    with pytest.raises(ToolchainError, match="batch_mode"):
        batch_plan(p, 3, "parallel")
    with pytest.raises(ToolchainError, match="max_batch"):
        batch_plan(p, 3, max_batch=0)
    nnz = sum(s.weight.nnz for s in p.synapses)
    old = lava_backend.BATCH_SYNAPSE_BUDGET
    try:
        lava_backend.BATCH_SYNAPSE_BUDGET = 2 * nnz        # two copies fit: chunks of at most 2
        assert batch_plan(p, 5) == [(0, 2, True), (2, 3, True), (3, 5, True)]
        lava_backend.BATCH_SYNAPSE_BUDGET = nnz            # one copy only: per sample, with a warning
        with pytest.warns(UserWarning, match="two do not fit the batch budget"):
            assert batch_plan(p, 2) == [(0, 1, False), (1, 2, False)]
        lava_backend.BATCH_SYNAPSE_BUDGET = nnz - 1        # not even one copy: per sample, with a warning
        with pytest.warns(UserWarning, match="one network per sample"):
            assert batch_plan(p, 2) == [(0, 1, False), (1, 2, False)]
        with pytest.raises(ToolchainError, match="more than the batch budget"):
            batch_plan(p, 2, "batched")
    finally:
        lava_backend.BATCH_SYNAPSE_BUDGET = old
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert batch_plan(p, 2) == [(0, 2, True)]


def test_cli_verify_runs_batched(tmp_path, capsys, monkeypatch) -> None:
    """``snnc verify --random 3`` runs Lava as one batched network by default (``--lava-mode``), bit-exact."""
    from toolchain.cli.main import main
    p = int_program((8, 6, 4), seed=7, storage="csr", recurrent=True, reset_mode="subtract")
    build = tmp_path / "build"
    p.save(build)
    modes = []
    real = lava_backend.batch_plan

    def spy(*args, **kwargs):
        plan = real(*args, **kwargs)
        modes.append([b for _, _, b in plan])
        return plan

    monkeypatch.setattr(lava_backend, "batch_plan", spy)
    assert main(["verify", str(build), "--random", "3", "--steps", "8", "--seed", "3"]) == 0
    assert "bit-exact: yes" in capsys.readouterr().out and modes == [[True]]
    assert main(["verify", str(build), "--random", "2", "--steps", "8", "--lava-mode", "per_sample"]) == 0
    assert "bit-exact: yes" in capsys.readouterr().out and modes[-1] == [False, False]
