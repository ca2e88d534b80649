"""netx export: a Program written as a lava-dl netx HDF5 file runs bit-exactly in lava-dl's own reader.

Every spike, ``u`` and ``v`` of every layer at every step of ``lava.lib.dl.netx.hdf5.Network`` (on
``Loihi2SimCfg(select_tag="fixed_pt")``) is compared with :func:`toolchain.sim.reference.simulate`, at the
documented offset ``NETX_EXTRA_DELAY`` (0 steps); what netx cannot hold raises naming the layer and field, and
never leaves a file behind.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("lava.proc.lif.process")

from toolchain.backends.netx import NETX_EXTRA_DELAY, export_netx, netx_dense_weights  # noqa: E402
from toolchain.compile import compile_graph  # noqa: E402
from toolchain.errors import ToolchainError  # noqa: E402
from toolchain.ir.storage import Dense  # noqa: E402
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import int_inputs, int_program, random_lif_graph  # noqa: E402


@pytest.fixture(scope="module")
def lava():
    """Lava's processes and lava-dl's netx reader (imported once; netx pulls in torch, ~10 s)."""
    from toolchain.backends.lava import _lava
    L = _lava()
    try:
        from lava.lib.dl.netx.hdf5 import Network
    except ImportError as exc:  # pragma: no cover - lava-dl is a dependency
        pytest.skip(f"lava-dl netx not importable: {exc}")
    L["Network"] = Network
    return L


def netx_ready(program: Program, seed: int = 0) -> Program:
    """The same Program restricted to what netx holds: biases ``bias_mant << 6`` (netx fixes bias_exp = 6) with
    small mantissas of either sign on some neurons; weights scaled by ``2^-weight_exp`` (toward zero) where
    ``weight_exp > 0`` and made multiples of ``2^-weight_exp`` where it is negative, so that the exponent folds
    into the file's weights."""
    r = np.random.default_rng(seed)
    groups = []
    for g in program.groups.values():
        mant = r.integers(-12, 13, size=g.size) * (r.random(g.size) < 0.4)
        groups.append(NeuronGroup(g.name, g.shape, g.du, g.dv, g.vth, mant, np.full(g.size, 6), g.reset_mode,
                                  g.spiking, g.source))
    synapses = []
    for s in program.synapses:  # weight_exp is folded into the file's weights: keep them in netx's range
        e = s.weight_exp          # (e > 0), or divisible by 2^-e (e < 0)
        w = s.weight.map_values(lambda v, e=e: np.fix(np.asarray(v) / 2 ** abs(e)) * (2 ** -e if e < 0 else 1)) \
            if e else s.weight
        synapses.append(SynapseGroup(s.name, s.src, s.dst, w, e, s.num_weight_bits, s.sign_mode, s.delay,
                                     s.recurrent))
    return Program(groups, synapses, program.inputs, program.output, dt=program.dt)


def run_netx(L, path: Path, x: np.ndarray, steps: int):
    """Run the netx Network in ``path`` for ``steps`` steps on one sample ``x`` (T, *shape); returns the output
    spikes (steps, n) and per layer ``{"u": (steps, n), "v": (steps, n)}``."""
    net = L["Network"](net_config=str(path))
    src = L["Source"](data=np.ascontiguousarray(x.reshape(steps, -1).T.astype(np.int32)))
    src.s_out.connect(net.inp)
    sink = L["Sink"](shape=net.out.shape, buffer=steps)
    net.out.connect(sink.a_in)
    mons = []
    for lay in net.layers:  # one Monitor per Var (a Monitor with two probes fails to compile in Lava 0.10.0)
        pair = {}
        for var in ("u", "v"):
            m = L["Monitor"]()
            m.probe(getattr(lay.neuron, var), steps)
            pair[var] = m
        mons.append(pair)
    try:
        net.run(condition=L["RunSteps"](num_steps=steps), run_cfg=L["Loihi2SimCfg"](select_tag="fixed_pt"))
        out = np.asarray(sink.data.get()).T.astype(np.int64)
        states = []
        for pair in mons:
            st = {}
            for var, m in pair.items():
                data = m.get_data()
                (per_proc,) = data.values()
                st[var] = np.asarray(per_proc[var]).reshape(steps, -1).astype(np.int64)
            states.append(st)
    finally:
        net.stop()
    return out, states, len(net.layers)


def assert_netx_bit_exact(L, program: Program, path: Path, steps: int = 16, seed: int = 0) -> None:
    x = int_inputs(program, 1, steps, rate=0.4, seed=seed)
    ref = simulate(program, x, record=True)
    out, states, n_layers = run_netx(L, path, x[0], steps + NETX_EXTRA_DELAY)
    names = list(program.groups)
    assert n_layers == len(names)
    d = NETX_EXTRA_DELAY
    for k, g in enumerate(names):
        for var in ("u", "v"):
            got, want = states[k][var][d:], getattr(ref, var)[g][0].astype(np.int64)
            bad = np.argwhere(got != want)
            assert bad.size == 0, f"{g}.{var}: first mismatch at (step, neuron) {tuple(bad[0])}"
    out_name = program.output
    if program.groups[out_name].spiking:
        assert np.array_equal(out[d:], ref.spikes[out_name][0]), f"output spikes of {out_name} differ"
    assert any(ref.spikes[g].any() for g in names), "the test program must spike somewhere"
    # the offset is exactly NETX_EXTRA_DELAY: shifted by one step, the first layer's current does not match
    g0 = names[0]
    assert ref.u[g0].any()
    assert not np.array_equal(states[0]["u"][d + 1:], ref.u[g0][0][:-1])
    if d > 0:  # pragma: no cover - the layout written has no extra delay
        assert not np.array_equal(states[0]["u"][d - 1:-1], ref.u[g0][0])


# ------------------------------------------------------------------------------- netx weight model
def test_weight_model_matches_lava_dl() -> None:
    """netx_dense_weights re-states lava-dl's optimize_weight_bits and Lava's Dense weight preparation exactly:
    same used weights, exponent and bit count on matrices of every sign pattern, scale and divisibility."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    r = np.random.default_rng(0)
    cases = [np.array([[-256, 0]]), np.array([[-4, 0]]), np.array([[-3, -5]]), np.array([[0, 255]]),
             np.array([[-256, 254]]), np.array([[1, 0, 3]]), np.array([[-2, 1]]), np.array([[-128, 64]])]
    for _ in range(400):
        lo, hi = [(-256, 254), (0, 255), (-256, 0), (-16, 16), (-3, 40), (-255, -1)][int(r.integers(0, 6))]
        w = r.integers(lo, hi + 1, size=(int(r.integers(1, 5)), int(r.integers(1, 6))))
        w = w << int(r.integers(0, 4)) if r.random() < 0.3 else w
        if np.any(w):
            cases.append(w)
    n_exact = 0
    for w in cases:
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(divide="ignore"):
            wq, nb, e, _ = optimize_weight_bits(w.copy())
        ours = netx_dense_weights(w)
        real_exact = False
        if e <= 0:  # e > 0: netx shifted the weights right (values beyond its range)
            mode = determine_sign_mode(wq)
            used = truncate_weights(clip_weights(wq, mode, num_bits=8), mode, nb)
            real_exact = bool(np.array_equal(np.asarray(used, np.int64), w.astype(np.int64) << -e))
        assert ours.exact == real_exact, (w, ours.reason)
        if real_exact:
            assert ours.weight_exp == e and ours.num_weight_bits == nb, w
            assert ours.sign_mode == mode.name.lower(), w
            assert np.array_equal(ours.weights, used), w
        else:
            assert ours.reason
        n_exact += real_exact
    assert n_exact > len(cases) // 2  # most matrices are representable; the others are found
    assert not netx_dense_weights(np.array([[-4, 0]])).exact  # -4 -> -256, Lava's inhibitory clip stops at -255
    assert not netx_dense_weights(np.zeros((2, 2), int)).exact


# ------------------------------------------------------------------------------- bit-exact runs
CASES = {
    "dense-mixed-3-layers": dict(sizes=(12, 10, 8, 6), storage="dense", weight_exp=(0, 2)),
    "sparse-signs-exp": dict(sizes=(10, 9, 7), storage="mixed", density=0.6,
                             sign_modes=("mixed", "excitatory"), weight_exp=(-1, 1), per_neuron=False),
    "delays": dict(sizes=(10, 8, 6), storage="dense", max_delay=3, per_neuron=True),
    "readout-7bit": dict(sizes=(14, 12, 5), storage="csr", density=0.7, weight_bits=(7,), weight_exp=(-2, 0),
                         readout=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_netx_bit_exact(lava, tmp_path: Path, case: str) -> None:
    program = netx_ready(int_program(seed=3, **CASES[case]), seed=3)
    if CASES[case].get("max_delay"):
        assert all(s.delay > 0 for s in program.synapses)  # DelayDense on every layer
    path = export_netx(program, tmp_path / "net.net")
    assert path == tmp_path / "net.net" and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["net.net"]  # no temporary file left behind
    assert_netx_bit_exact(lava, program, path, steps=16, seed=4)


def test_file_layout(tmp_path: Path) -> None:
    """The fields netx reads hold the Program's integers: iDecay = du + 1, vDecay = dv, vThMant = vth,
    bias = (bias_mant << bias_exp) / 64, weight = Lava's weights with weight_exp folded in."""
    import h5py
    program = netx_ready(int_program((6, 5, 4), seed=2, weight_exp=(1, 1)), seed=2)
    path = export_netx(program, tmp_path / "m.net")
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        assert sorted(layers, key=int) == ["0", "1", "2"]
        assert layers["0/type"][0] == b"input" and "neuron" not in layers["0"]
        assert list(layers["0/shape"][()]) == [6]
        for k, (name, g) in enumerate(program.groups.items(), start=1):
            lay = layers[str(k)]
            syn = program.synapses_into(name)[0]
            assert lay["type"][0] == b"dense" and lay["neuron/type"][0] == b"CUBA"
            assert np.array_equal(np.broadcast_to(lay["neuron/iDecay"][()], (g.size,)), g.du.astype(int) + 1)
            assert np.array_equal(np.broadcast_to(lay["neuron/vDecay"][()], (g.size,)), g.dv)
            assert np.array_equal(np.broadcast_to(lay["neuron/vThMant"][()], (g.size,)), g.vth)
            assert np.array_equal(lay["bias"][()] * 64, g.bias_mant.astype(int) << g.bias_exp.astype(int))
            w = syn.weight.to_dense().astype(int)
            want = (w >> 1 << 1) << 1  # mixed 8-bit: Lava drops the lowest bit; then weight_exp 1 folded in
            assert np.array_equal(lay["weight"][()], want)


def test_compiled_nir_model_loads_in_netx(lava, tmp_path: Path) -> None:
    """A NIR-style LIF graph compiled with compile_graph exports and runs bit-exactly in netx when compiled with
    small thresholds; with the default vth_max its weight_exp > 0 cannot be folded and the error says so."""
    graph = random_lif_graph((16, 12, 6), seed=1, storage="csr", density=0.6)
    split = compile_graph(graph, "loihi2")  # the default keeps weight-split companions where they cost no core
    assert split.metadata["precision"]["split"]
    with pytest.raises(ToolchainError) as exc:
        export_netx(split, tmp_path / "d.net")
    assert exc.value.node == "fc0.lo" and exc.value.field == "weight_split"
    assert "compile_for_netx" in str(exc.value) and "--no-weight-split" in str(exc.value)
    assert not (tmp_path / "d.net").exists()
    default = compile_graph(graph, "loihi2", weight_split=False)
    with pytest.raises(ToolchainError) as exc:
        export_netx(default, tmp_path / "d.net")
    assert exc.value.node == "fc0" and exc.value.field == "weight" and "vth_max" in str(exc.value)
    assert "compile_for_netx" in str(exc.value)
    assert not (tmp_path / "d.net").exists()
    program = compile_graph(graph, "loihi2", vth_max=256)
    path = export_netx(program, tmp_path / "c.net")
    net = lava["Network"](net_config=str(path))
    assert len(net) == 2 and net.inp.shape == (16,) and net.out.shape == (6,)
    assert_netx_bit_exact(lava, program, path, steps=20, seed=1)


# ------------------------------------------------------------------------------- refusals
def _one_layer(bias_mant=0, bias_exp=0, **syn_kw) -> Program:
    g = NeuronGroup("h", (3,), du=100, dv=200, vth=50, bias_mant=bias_mant, bias_exp=bias_exp)
    w = syn_kw.pop("weight", Dense(np.array([[2, -4], [6, 0], [8, 10]], np.int16)))
    return Program([g], [SynapseGroup("w_in_h", "in", "h", w, **syn_kw)], [InputPort("in", (2,))], output="h")


def _back_edge() -> Program:
    """g1 -> g0: recurrence between two groups (netx holds only a layer's own recurrent matrix, dense_rec)."""
    p = int_program((4, 3, 2), seed=0)
    back = SynapseGroup("w_back", "g1", "g0", Dense(np.full((3, 2), 4, np.int16)), recurrent=True)
    return Program(list(p.groups.values()), p.synapses + [back], p.inputs, p.output, dt=p.dt)


UNSUPPORTED = {
    "recurrent-between-groups": (lambda: _back_edge(), "w_back", "recurrent"),
    "subtract-reset": (lambda: int_program((4, 3, 2), seed=0, reset_mode="subtract"), "g0", "reset_mode"),
    "skip": (lambda: int_program((4, 3, 2), seed=0, skip=True), "in", "synapses"),
    "graded-input": (lambda: int_program((4, 3), seed=0, graded_bits=4), "in", "num_message_bits"),
    "bias": (lambda: _one_layer(bias_mant=[64, 3, 1], bias_exp=[0, 2, 6]), "h", "bias_mant"),
    "weight-exp-neg": (lambda: _one_layer(weight_exp=-2), "w_in_h", "weight_exp"),
    "zero-weights": (lambda: _one_layer(weight=Dense(np.zeros((3, 2), np.int16))), "w_in_h", "weight"),
    "inhibitory-clip": (lambda: _one_layer(weight=Dense(np.array([[-4, 0], [-2, 0], [0, -1]], np.int16))),
                        "w_in_h", "weight"),
    "too-large": (lambda: _one_layer(weight_exp=6), "w_in_h", "weight"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_raises_naming_layer(tmp_path: Path, case: str) -> None:
    make, node, field = UNSUPPORTED[case]
    program = make()
    path = tmp_path / "x.net"
    path.write_bytes(b"previous")  # an existing file is left untouched by a failed export
    with pytest.raises(ToolchainError) as exc:
        export_netx(program, path)
    assert exc.value.node == node and exc.value.field == field, str(exc.value)
    assert node in str(exc.value) and field in str(exc.value)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.net"]
    if case == "bias":
        assert "neuron 1 has 3 << 2 = 12" in str(exc.value)


def test_side_branch_and_two_ports_refused() -> None:
    """A group off the chain, and a second input port, are refused by name."""
    base = _one_layer()
    extra = NeuronGroup("side", (2,), du=1, dv=1, vth=10, bias_mant=0, bias_exp=0)
    prog = Program([base.groups["h"], extra], base.synapses + [
        SynapseGroup("w_in2_side", "in2", "side", Dense(np.full((2, 2), 4, np.int16)))],
        [InputPort("in", (2,)), InputPort("in2", (2,))], output="h")
    with pytest.raises(ToolchainError, match="2 input ports"):
        export_netx(prog, "/nonexistent/never.net")
    prog1 = Program([base.groups["h"], extra], base.synapses, [InputPort("in", (2,))], output="h")
    with pytest.raises(ToolchainError) as exc:
        export_netx(prog1, "/nonexistent/never.net")
    assert exc.value.node == "side" and exc.value.field == "groups"


def test_export_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "m.net"
    path.write_bytes(b"old")
    program = netx_ready(int_program((5, 4), seed=0), seed=0)
    assert export_netx(program, str(path)) == path
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    with pytest.raises(ToolchainError, match="directory"):
        export_netx(program, tmp_path)


def test_cli_compile_netx(tmp_path: Path, capsys) -> None:
    """``snnc compile F.nir -o BUILD --netx F.net`` writes both, compiling a default build to a representation
    netx holds and printing what changed; a network netx cannot hold (subtractive reset) is refused before
    anything is written (exit status 1, the layer named)."""
    import h5py

    from toolchain.cli.main import main
    from toolchain.nir_io import export

    nir_file = tmp_path / "m.nir"
    export(random_lif_graph((8, 6, 4), seed=0), nir_file)
    net_file, build = tmp_path / "m.net", tmp_path / "build"
    assert main(["compile", str(nir_file), "-o", str(build), "--reset", "subtract", "--netx", str(net_file)]) == 1
    assert not net_file.exists() and not build.exists()
    err = capsys.readouterr().err
    assert "error: " in err and "field 'reset_mode'" in err and "--reset zero" in err
    assert main(["compile", str(nir_file), "-o", str(build), "--netx", str(net_file)]) == 0  # default vth_max
    out = capsys.readouterr().out
    assert "netx: vth_max 16384 -> " in out and "netx: align_bias off" in out
    assert build.is_dir()
    with h5py.File(net_file, "r") as f:
        assert sorted(f["layer"], key=int) == ["0", "1", "2"]
        assert f["layer/2/weight"].shape == (4, 6)
