"""netx export of every Program netx can hold, checked through lava-dl 0.6.0's own reader on Lava (every spike,
u and v at every step equal to the reference simulator): conv layers, dense_rec, per-synapse delays, an input
layer driven by its bias, periodic reset, default NIR builds (compile_for_netx), and the round trip
netx -> Program -> netx for Intel's files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netx_files import conv_net, dense_rec_net
from toolchain.backends.lava_dl import run_netx_file
from toolchain.backends.netx import compile_for_netx, export_netx, netx_network_args
from toolchain.errors import ToolchainError
from toolchain.netx_io import load_netx
from toolchain.netx_io.traces import PILOTNET_RESET_INTERVAL, PILOTNET_STEPS, compare_pilotnet, pilotnet_exact
from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
from toolchain.sim.reference import simulate
from toolchain.testing import int_inputs, int_program, random_lif_graph

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lava-dl"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/lava-dl is not present")


def assert_lava_dl_equal(program: Program, path: Path, x: np.ndarray, steps: int) -> None:
    """lava-dl's reader on ``path`` (with the Network arguments the export asks for) equals the reference
    simulator of ``program``: every spike, u and v of every layer at every step; and the program is active."""
    ref = simulate(program, x, steps=steps, record=True)
    got = run_netx_file(path, x, steps, **netx_network_args(program))
    names = list(program.groups)
    assert got.groups == [f"layer{k}" for k in range(len(names))]
    for k, g in enumerate(names):
        for what in ("spikes", "u", "v"):
            a = getattr(ref, what)[g].astype(np.int64)
            b = getattr(got, what)[f"layer{k}"].astype(np.int64)
            bad = np.argwhere(a != b)
            assert bad.size == 0, f"{g}.{what}: first mismatch at (sample, step, neuron) {tuple(bad[0])}"
    assert sum(int(ref.spikes[g].sum()) for g in names) > 0


def test_conv_program_exports_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    p = load_netx(conv_net(tmp_path / "in.net", rng), reset_interval=6, reset_offset=1)
    out = export_netx(p, tmp_path / "out.net")
    assert netx_network_args(p) == {"reset_interval": 6, "reset_offset": 1}
    bias = rng.integers(0, 80, (1, 8, 6, 4)).astype(np.int32)
    assert_lava_dl_equal(p, out, bias, 12)
    q = load_netx(out, reset_interval=6, reset_offset=1)  # and it reads back as the same network
    assert simulate(p, bias, steps=12, record=True).output.tolist() == simulate(q, bias, steps=12).output.tolist()


@pytest.mark.parametrize("delay", ["synapse", "scalar"])
def test_dense_rec_and_delays_export_bit_exact(tmp_path, delay):
    rng = np.random.default_rng(5)
    p = load_netx(dense_rec_net(tmp_path / "in.net", rng, delay))
    assert any(s.delay for s in p.synapses) and any(s.src == s.dst for s in p.synapses)
    out = export_netx(p, tmp_path / "out.net")
    x = (rng.random((1, 14, 10)) < 0.5).astype(np.int32)
    assert_lava_dl_equal(p, out, x, 14)


@pytest.mark.parametrize("opts", [dict(recurrent=True), dict(max_delay=3, storage="csr")])
def test_int_program_with_self_recurrence_or_delays_exports(tmp_path, opts):
    """A Program built directly (not from a netx file): self-recurrent layers, or delayed sparse synapses; zero
    reset, biases in netx's grid. (A delayed *recurrent* layer is refused: lava-dl gives the recurrent matrix the
    feed-forward delays and drops the weight exponent — see test_bias_input_program_refusals...)."""
    p = int_program((9, 7, 5), seed=4, **opts)
    groups = [NeuronGroup(g.name, g.shape, g.du, g.dv, g.vth, np.where(np.arange(g.size) % 3 == 0, 2, 0), 6)
              for g in p.groups.values()]
    p = Program(groups, p.synapses, p.inputs, p.output, dt=p.dt)
    try:
        out = export_netx(p, tmp_path / "p.net")
    except ToolchainError as exc:  # the random weights must fold: a refusal here is a failure
        raise AssertionError(str(exc)) from exc
    assert_lava_dl_equal(p, out, int_inputs(p, 1, 16, rate=0.4, seed=4), 16)


def test_default_nir_build_is_made_exportable_and_says_what_changed(tmp_path):
    graph = random_lif_graph((16, 12, 6), seed=1, storage="csr", density=0.6)
    p = compile_for_netx(graph, "loihi2")
    changes = p.metadata["netx_changes"]
    assert any("vth_max" in c for c in changes) and any("align_bias" in c for c in changes)
    out = export_netx(p, tmp_path / "d.net")
    assert_lava_dl_equal(p, out, int_inputs(p, 1, 20, rate=0.4, seed=1), 20)


def test_cli_compile_netx_from_a_default_build(tmp_path):
    from toolchain.cli.main import main
    from toolchain.nir_io import export
    graph = random_lif_graph((10, 8, 4), seed=2)
    nir_path = tmp_path / "g.nir"
    export(graph, nir_path)
    code = main(["compile", str(nir_path), "-o", str(tmp_path / "b"), "--netx", str(tmp_path / "g.net")])
    assert code == 0 and (tmp_path / "g.net").is_file() and (tmp_path / "b" / "program.json").is_file()


def test_bias_input_program_refusals_name_group_and_field(tmp_path):
    g0 = NeuronGroup("inp", (4,), du=4095, dv=1024, vth=25, bias_mant=[1, 0, 0, 0], bias_exp=6)
    g1 = NeuronGroup("h", (2,), du=4095, dv=1024, vth=25, bias_mant=0, bias_exp=6)
    from toolchain.ir.storage import Dense
    syn = SynapseGroup("w", "inp", "h", Dense(np.ones((2, 4), np.int16) * 4))
    p = Program([g0, g1], [syn], [InputPort("x", (4,), kind="bias", target="inp")], output="h")
    with pytest.raises(ToolchainError) as e:
        export_netx(p, tmp_path / "a.net")
    assert e.value.node == "inp" and e.value.field == "bias_mant"
    assert not (tmp_path / "a.net").exists()
    g1r = NeuronGroup("h", (2,), du=4095, dv=1024, vth=25, bias_mant=0, bias_exp=6, reset_interval=4,
                      reset_offset=3)
    g0r = NeuronGroup("inp", (4,), du=4095, dv=1024, vth=25, bias_mant=0, bias_exp=6, reset_interval=4,
                      reset_offset=1)
    p2 = Program([g0r, g1r], [syn], [InputPort("x", (4,), kind="bias", target="inp")], output="h")
    with pytest.raises(ToolchainError) as e:
        export_netx(p2, tmp_path / "b.net")
    assert e.value.node == "h" and e.value.field == "reset_offset"


def test_dense_rec_parts_are_checked_one_by_one(tmp_path):
    """lava-dl optimises [W, W_rec] jointly but builds two Dense processes that each derive their own sign mode:
    an all-inhibitory W beside an excitatory W_rec gets num_weight_bits 9, which Lava cannot truncate."""
    from toolchain.ir.storage import Dense
    g = NeuronGroup("h", (3,), du=100, dv=200, vth=50, bias_mant=0, bias_exp=6)
    ff = SynapseGroup("w", "in", "h", Dense(-np.array([[3, 0], [5, 7], [0, 201]], np.int16)), sign_mode="inhibitory")
    rec = SynapseGroup("w_rec", "h", "h", Dense(np.array([[0, 4, 0], [2, 0, 151], [0, 0, 0]], np.int16)),
                       sign_mode="excitatory", recurrent=True)
    p = Program([g], [ff, rec], [InputPort("in", (2,))], output="h")
    with pytest.raises(ToolchainError) as e:
        export_netx(p, tmp_path / "r.net")
    assert e.value.field == "weight" and "num_weight_bits 9" in str(e.value)
    assert not (tmp_path / "r.net").exists()


@needs_data
def test_tinynet_round_trip_through_lava_dl(tmp_path):
    p = load_netx(DATA / "tinynet" / "tiny.net", reset_interval=17)
    out = export_netx(p, tmp_path / "tiny.net")
    bias = np.load(DATA / "tinynet" / "input_bias.npy")[None].astype(np.int32)
    assert_lava_dl_equal(p, out, bias, 20)


@needs_data
def test_pilotnet_round_trip_keeps_intels_states(tmp_path):
    """netx -> Program -> netx -> Program: the re-read network reproduces Intel's Loihi 2 states (reference
    simulator; lava-dl's reader on the exported file is run by benchmarks/netx.py and the slow test below)."""
    p = load_netx(DATA / "pilotnet_lif" / "network.net", reset_interval=PILOTNET_RESET_INTERVAL)
    out = export_netx(p, tmp_path / "pilotnet.net")
    q = load_netx(out, reset_interval=PILOTNET_RESET_INTERVAL)
    image = np.load(DATA / "pilotnet_lif" / "image.npy")[None]
    rows = compare_pilotnet(simulate(q, image, steps=PILOTNET_STEPS, record=True), q, DATA / "pilotnet_lif")
    assert pilotnet_exact(rows)


@pytest.mark.slow
@needs_data
def test_pilotnet_round_trip_through_lava_dl(tmp_path):
    p = load_netx(DATA / "pilotnet_lif" / "network.net", reset_interval=PILOTNET_RESET_INTERVAL)
    out = export_netx(p, tmp_path / "pilotnet.net")
    image = np.load(DATA / "pilotnet_lif" / "image.npy")[None]
    got = run_netx_file(out, image, PILOTNET_STEPS, reset_interval=PILOTNET_RESET_INTERVAL)
    renamed = type(got)(spikes={g: got.spikes[f"layer{k}"] for k, g in enumerate(p.groups)},
                        u={g: got.u[f"layer{k}"] for k, g in enumerate(p.groups)},
                        v={g: got.v[f"layer{k}"] for k, g in enumerate(p.groups)}, output=got.output,
                        output_group=list(p.groups)[-1], output_kind="spikes", steps_run=got.steps_run,
                        backend="lava-dl", groups=list(p.groups))
    assert pilotnet_exact(compare_pilotnet(renamed, p, DATA / "pilotnet_lif"))
