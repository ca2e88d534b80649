"""The reference integer simulator against its peers and the dense float floor, measured side by side.

    python benchmarks/sim_vs_peers.py [--quick] [--steps T] [--rounds R] [--batches 1 32 256]
                                      [--rates 0.02 0.2] [--nets ff rec]

**Networks** (``toolchain.testing.benchmark_program``, as in ``benchmarks/sim_vs_lava.py``): "ff", a
784-256-256-10 CUBA-LIF Program with dense 8-bit mixed-sign weights, and "rec", the same with a recurrent 256x256
synapse group on each hidden layer. Input: random binary spikes at rate 0.02 or 0.2, batch 1, 32 and 256.

**Engines**, all single-threaded (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``), each given its input in
its own format, prepared outside the timing:

* ``reference``: :func:`toolchain.sim.reference.simulate`, the integers Lava's ``fixed_pt`` models compute
  (the event-driven product chosen per synapse group and step by the activity, ``event=None``);
* ``ref_dense``: the same simulator with dense products only (``event=False``) — the baseline of
  ``event_vs_dense``;
* ``torch``: the reference simulator's torch backend on the CPU (``simulate(..., backend="torch")``,
  :mod:`toolchain.sim.torch_backend`: float64 tensors holding the same integers, float32 products; it is also
  the engine of PyTorch integer mode, :class:`toolchain.nn.IntegerNet`);
* ``snntorch`` / ``norse``: the equivalent float32 network (the weights Lava uses times ``2^weight_exp · 64``,
  the decays ``(4096 - du - 1)/4096`` and ``(4096 - dv)/4096``, threshold ``vth · 64``, zero reset right after
  the spike, the bias added to the input current) as ``snntorch.Synaptic`` (``reset_delay=False``) and Norse's
  ``LIFCell`` (``dt = 1``; its current is scaled by ``1/tau_mem_inv`` so that the voltage integrates it as
  above), stepped in a Python loop under ``torch.no_grad()`` on CPU;
* ``floor``: the bare float32 numpy loop every dense simulator pays for — per step and layer ``x @ W`` (and the
  recurrent ``s @ W_rec``) into preallocated buffers plus the in-place element-wise LIF (decay and add ``u``,
  decay and add ``v``, bias, threshold straight into float spikes, zero reset as a multiplication — masked
  writes such as ``v[s] = 0`` cost several times more on irregular spike patterns).

The float engines compute without delays or rounding; their output rates are printed beside the reference's to
show that they do comparable work (they are not meant to be equal).

**Timing.** Each engine runs ``T`` steps and ``T_short = T/5`` steps; one *round* runs every engine once at both
lengths, in an order rotated from round to round (the machine may be shared: interleaving spreads slow phases
over all engines). Throughput is in sample-steps per second: *steady* = ``B · (T - T_short) / (t_T - t_short)``
(per-step cost, set-up excluded — each call's set-up such as the reference's weight preparation cancels), and
*per run* = ``B · T / t_T`` (set-up included). Times are CPU seconds of the process (``time.process_time``:
single-threaded work, insensitive to waiting for a core on a busy machine); the wall-clock steady throughput is
printed too. Every figure is the median over rounds, and every ratio the median over rounds of the per-round
ratio, i.e. of two engines measured seconds apart.

**RESULT lines** (ff network, input rate 0.2, steady state, CPU time): ``ref_vs_snntorch_b256``,
``ref_vs_floor_b256``, ``ref_vs_floor_b1`` (the reference's throughput over the peer's); ``event_vs_dense_2pct``:
the event-driven path over the dense path for one 784x256 synapse group's product at exactly 2% activity, batch
256, through the simulator's own synapse code (median of interleaved CPU-time pairs); ``event_vs_dense_sim_2pct``:
the whole simulation (ff network, batch 256, input rate 0.02; the hidden layers then spike at about 2-4% and the
output layer at about 10%, and the LIF update of every neuron is the same on both) with the automatic choice over
dense products only.

**Torch backend, exactness and CUDA.** ``RESULT torch_backend_exact`` is 1 when the torch backend's records equal
the numpy simulator's — every spike, ``u`` and ``v`` of every group at every step — on both networks at both
input rates (batch 32, CPU; and, where CUDA is present, batch 1024 on the GPU), else 0. Where
``torch.cuda.is_available()``, the ff network at rate 0.2 also runs on the GPU at batch 1024 (steady per-step
throughput, wall clock, each run ending with the copy of the output to the host), beside the numpy simulator
at the same batch on one CPU thread: ``RESULT torch_cuda_b1024`` (sample-steps/s) and
``RESULT torch_cuda_vs_ref_b1024``. Without CUDA those two lines are replaced by a note.

``--quick`` (a few minutes on two busy cores): 30 steps (T_short 6), 3 rounds instead of 100 steps and 5 rounds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from toolchain import fixedpoint as fx  # noqa: E402
from toolchain.sim.reference import simulate  # noqa: E402
from toolchain.testing import benchmark_program, int_inputs  # noqa: E402
from toolchain.textutil import table_lines  # noqa: E402

ENGINES = ("reference", "ref_dense", "torch", "snntorch", "norse", "floor")


# ------------------------------------------------------------------------------------ the float network
def float_layers(program):
    """Per neuron group (program order): the equivalent float32 parameters (see the module docstring)."""
    layers = []
    for name, g in program.groups.items():
        ff, rec = None, None
        for s in program.synapses:
            if s.dst != name:
                continue
            w = fx.lava_weights(s.weight.to_dense(), s.num_weight_bits, s.sign_mode).astype(np.float64)
            w = (w * 2.0 ** s.weight_exp * 64.0).T.astype(np.float32)  # (n_in, n_out)
            if s.src == name:
                rec = w
            elif ff is None:
                ff = w
            else:
                raise ValueError("benchmark networks have one feed-forward synapse group per neuron group")
        n = g.size
        bu = np.broadcast_to((4096 - (g.du.astype(np.float64) + 1)) / 4096, (n,)).astype(np.float32)
        bv = np.broadcast_to((4096 - g.dv.astype(np.float64)) / 4096, (n,)).astype(np.float32)
        thr = np.broadcast_to(g.vth.astype(np.float64) * 64, (n,)).astype(np.float32)
        bias = fx.effective_bias(g.bias_mant, g.bias_exp).astype(np.float32) * np.ones(n, np.float32)
        layers.append(dict(w=ff, w_rec=rec, bu=bu, bv=bv, thr=thr, bias=bias))
    return layers


class Floor:
    """The bare float32 numpy loop (module docstring): preallocated buffers, in-place element-wise LIF."""

    def __init__(self, layers):
        self.layers = layers

    def run(self, x_tm: np.ndarray) -> float:
        """``x_tm`` (T, B, n_in) float32; returns the output spike rate."""
        steps, batch = x_tm.shape[:2]
        L = self.layers
        u = [np.zeros((batch, l["w"].shape[1]), np.float32) for l in L]
        v = [np.zeros_like(a) for a in u]
        cur = [np.zeros_like(a) for a in u]
        keep = [np.zeros_like(a) for a in u]
        sf = [[np.zeros_like(a), np.zeros_like(a)] for a in u]  # this step's and the previous step's spikes
        has_bias = [bool(np.any(l["bias"])) for l in L]
        count = 0.0
        for t in range(steps):
            inp = x_tm[t]
            new, old = t % 2, 1 - t % 2
            for k, l in enumerate(L):
                np.matmul(inp, l["w"], out=cur[k])
                if l["w_rec"] is not None:
                    cur[k] += sf[k][old] @ l["w_rec"]
                u[k] *= l["bu"]
                u[k] += cur[k]
                v[k] *= l["bv"]
                v[k] += u[k]
                if has_bias[k]:
                    v[k] += l["bias"]
                np.greater(v[k], l["thr"], out=sf[k][new], casting="unsafe")  # spikes as float 0/1
                np.subtract(1.0, sf[k][new], out=keep[k])
                v[k] *= keep[k]                                                 # zero reset, no branches
                inp = sf[k][new]
            count += float(np.count_nonzero(inp))
        return count / max(steps * batch * L[-1]["w"].shape[1], 1)


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


class SnnTorchNet:
    """The float network with ``snntorch.Synaptic`` neurons and ``torch.nn.Linear`` synapses."""

    def __init__(self, layers):
        torch = _torch()
        import snntorch as snn
        self.torch = torch
        self.fc, self.fc_rec, self.lif = [], [], []
        for l in layers:
            n_in, n_out = l["w"].shape
            fc = torch.nn.Linear(n_in, n_out, bias=bool(np.any(l["bias"])))
            fc.weight.data = torch.from_numpy(np.ascontiguousarray(l["w"].T))
            if fc.bias is not None:
                fc.bias.data = torch.from_numpy(l["bias"].copy())
            rec = None
            if l["w_rec"] is not None:
                rec = torch.nn.Linear(n_out, n_out, bias=False)
                rec.weight.data = torch.from_numpy(np.ascontiguousarray(l["w_rec"].T))
            self.fc.append(fc)
            self.fc_rec.append(rec)
            self.lif.append(snn.Synaptic(alpha=torch.from_numpy(l["bu"].copy()), beta=torch.from_numpy(l["bv"].copy()),
                                         threshold=torch.from_numpy(l["thr"].copy()), reset_mechanism="zero",
                                         reset_delay=False))

    def run(self, x_tm) -> float:
        torch = self.torch
        steps, batch = x_tm.shape[:2]
        with torch.no_grad():
            syn = [torch.zeros(batch, f.out_features) for f in self.fc]
            mem = [torch.zeros(batch, f.out_features) for f in self.fc]
            spk = [torch.zeros(batch, f.out_features) for f in self.fc]
            count = 0.0
            for t in range(steps):
                inp = x_tm[t]
                for k, (fc, rec, lif) in enumerate(zip(self.fc, self.fc_rec, self.lif)):
                    cur = fc(inp)
                    if rec is not None:
                        cur = cur + rec(spk[k])
                    spk[k], syn[k], mem[k] = lif(cur, syn[k], mem[k])
                    inp = spk[k]
                count += float(spk[-1].sum())
        return count / max(steps * batch * self.fc[-1].out_features, 1)


class NorseNet:
    """The float network with Norse's ``LIFCell`` (``dt = 1``) and ``torch.nn.Linear`` synapses."""

    def __init__(self, layers):
        torch = _torch()
        from norse.torch import LIFCell, LIFParameters
        self.torch = torch
        self.fc, self.fc_rec, self.cell = [], [], []
        for l in layers:
            n_in, n_out = l["w"].shape
            tau_mem_inv = np.maximum(1.0 - l["bv"], 1e-6).astype(np.float32)
            scale = (1.0 / tau_mem_inv).astype(np.float32)  # Norse integrates tau_mem_inv * i
            fc = torch.nn.Linear(n_in, n_out, bias=bool(np.any(l["bias"])))
            fc.weight.data = torch.from_numpy(np.ascontiguousarray((l["w"] * scale[None, :]).T))
            if fc.bias is not None:
                fc.bias.data = torch.from_numpy((l["bias"] * scale).astype(np.float32))
            rec = None
            if l["w_rec"] is not None:
                rec = torch.nn.Linear(n_out, n_out, bias=False)
                rec.weight.data = torch.from_numpy(np.ascontiguousarray((l["w_rec"] * scale[None, :]).T))
            p = LIFParameters(tau_syn_inv=torch.from_numpy((1.0 - l["bu"]).astype(np.float32)),
                              tau_mem_inv=torch.from_numpy(tau_mem_inv), v_leak=torch.tensor(0.0),
                              v_th=torch.from_numpy(l["thr"].copy()), v_reset=torch.tensor(0.0))
            self.fc.append(fc)
            self.fc_rec.append(rec)
            self.cell.append(LIFCell(p, dt=1.0))

    def run(self, x_tm) -> float:
        torch = self.torch
        steps, batch = x_tm.shape[:2]
        with torch.no_grad():
            state = [None] * len(self.fc)
            spk = [torch.zeros(batch, f.out_features) for f in self.fc]
            count = 0.0
            for t in range(steps):
                inp = x_tm[t]
                for k, (fc, rec, cell) in enumerate(zip(self.fc, self.fc_rec, self.cell)):
                    cur = fc(inp)
                    if rec is not None:
                        cur = cur + rec(spk[k])
                    spk[k], state[k] = cell(cur, state[k])
                    inp = spk[k]
                count += float(spk[-1].sum())
        return count / max(steps * batch * self.fc[-1].out_features, 1)


# ----------------------------------------------------------------------------------------------- timing
def _clock():
    return time.process_time(), time.perf_counter()


def make_runners(prog, x_u8: np.ndarray, engines):
    """``{engine: run(steps) -> output spike rate}`` for input ``x_u8`` (B, T, n) uint8 0/1."""
    runners = {}
    layers = float_layers(prog)
    x_tm = np.ascontiguousarray(x_u8.transpose(1, 0, 2)).astype(np.float32)
    if "reference" in engines:
        runners["reference"] = lambda T: float(simulate(prog, x_u8[:, :T]).output.mean())
    if "ref_dense" in engines:
        runners["ref_dense"] = lambda T: float(simulate(prog, x_u8[:, :T], event=False).output.mean())
    if "torch" in engines:
        _torch()
        runners["torch"] = lambda T: float(simulate(prog, x_u8[:, :T], backend="torch").output.mean())
    if "snntorch" in engines:
        torch = _torch()
        net_s = SnnTorchNet(layers)
        xt = torch.from_numpy(x_tm)
        runners["snntorch"] = lambda T: net_s.run(xt[:T])
    if "norse" in engines:
        torch = _torch()
        net_n = NorseNet(layers)
        xt = torch.from_numpy(x_tm)
        runners["norse"] = lambda T: net_n.run(xt[:T])
    if "floor" in engines:
        fl = Floor(layers)
        runners["floor"] = lambda T: fl.run(x_tm[:T])
    return runners


def measure(runners, steps: int, short: int, rounds: int):
    """Interleaved rounds (module docstring); returns ``{engine: {"cpu": [...], "wall": [...], "cpu_run": [...],
    "rate": r}}`` with per-round steady CPU and wall seconds per step and per-run CPU seconds."""
    names = list(runners)
    res = {k: {"cpu": [], "wall": [], "cpu_run": [], "rate": 0.0} for k in names}
    for k in names:  # warm-up: imports, BLAS and torch initialisation, caches
        runners[k](min(short, steps))
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            c0, w0 = _clock()
            runners[k](short)
            c1, w1 = _clock()
            res[k]["rate"] = runners[k](steps)
            c2, w2 = _clock()
            res[k]["cpu"].append(max((c2 - c1) - (c1 - c0), 1e-9) / (steps - short))
            res[k]["wall"].append(max((w2 - w1) - (w1 - w0), 1e-9) / (steps - short))
            res[k]["cpu_run"].append((c2 - c1) / steps)
    return res


def product_event_vs_dense(batch: int = 256, n_in: int = 784, n_out: int = 256, density: float = 0.02,
                           reps: int = 30) -> float:
    """One synapse group's product alone: the event-driven path over the dense one at ``density`` (median of
    interleaved CPU-time pairs), through the simulator's own synapse code."""
    from toolchain.program import InputPort, NeuronGroup, Program, SynapseGroup
    from toolchain.ir.storage import Dense
    from toolchain.sim import reference as R
    r = np.random.default_rng(0)
    w = r.integers(-120, 140, (n_out, n_in))
    g = NeuronGroup("a", (n_out,), du=100, dv=100, vth=1000, bias_mant=0, bias_exp=0)
    prog = Program([g], [SynapseGroup("s", "in", "a", Dense(w))], [InputPort("in", (n_in,))], output="a")
    syn = R._compile_synapse(prog, prog.synapses[0])
    syn.prepare(float_out=True)
    s = r.random((batch, n_in)) < density
    dest = np.zeros((batch, n_out), np.float32)

    layer = R._FastLayer([], set(), 1)

    def outs():  # a fresh step: the dense path converts the spikes to float again, as in a simulation
        o = R._Outputs(layer)
        o["in"] = s
        return o

    ratios = []
    for _ in range(reps):
        c0 = time.process_time()
        for _ in range(5):
            syn.deliver(outs(), True, dest, True)
        c1 = time.process_time()
        for _ in range(5):
            syn.deliver(outs(), False, dest, True)
        c2 = time.process_time()
        ratios.append((c2 - c1) / max(c1 - c0, 1e-9))
    return float(np.median(ratios))


def torch_exact(nets, rates, steps: int, batch: int = 32, device: str = "cpu") -> bool:
    """Whether the torch backend on ``device`` records exactly what the numpy simulator records (every spike, u
    and v of every group at every step) on the benchmark networks."""
    for kind in nets:
        prog = benchmark_program(kind)
        for rate in rates:
            x = int_inputs(prog, batch, steps, rate=rate, seed=2).astype(np.uint8)
            ref = simulate(prog, x, record=True)
            got = simulate(prog, x, record=True, backend="torch", device=device)
            if ref.first_mismatch(got) is not None:
                print(f"torch backend ({device}) differs on {kind}, rate {rate:g}: {ref.first_mismatch(got)}")
                return False
    return True


def torch_cuda(steps: int, short: int, rounds: int, batch: int = 1024, rate: float = 0.2):
    """Steady wall-clock sample-steps/s of the torch backend on CUDA and of the numpy simulator (one CPU thread)
    on the ff network at ``batch``; returns (cuda, numpy, median of per-round ratios)."""
    torch = _torch()
    from toolchain.sim import torch_backend as TB
    prog = benchmark_program("ff")
    x = int_inputs(prog, batch, steps, rate=rate, seed=1).astype(np.uint8)
    plan = TB.plan(prog, "cuda")

    def cuda_run(T):
        TB.simulate(prog, x[:, :T], device="cuda", compiled=plan)  # ends with the output's copy to the host
        torch.cuda.synchronize()

    def ref_run(T):
        simulate(prog, x[:, :T])

    cuda_run(short)
    thr = {"cuda": [], "ref": []}
    for _ in range(rounds):
        for name, fn in (("cuda", cuda_run), ("ref", ref_run)):
            w0 = time.perf_counter()
            fn(short)
            w1 = time.perf_counter()
            fn(steps)
            w2 = time.perf_counter()
            thr[name].append(batch * (steps - short) / max((w2 - w1) - (w1 - w0), 1e-9))
    ratio = float(np.median(np.array(thr["cuda"]) / np.array(thr["ref"])))
    return float(np.median(thr["cuda"])), float(np.median(thr["ref"])), ratio


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 steps, 3 rounds")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 100, quick 30)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, quick 3)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.2])
    ap.add_argument("--nets", nargs="+", default=["ff", "rec"], choices=["ff", "rec"])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES),
                    help="engines to run (reference is always run: the ratios are against it)")
    args = ap.parse_args(argv)
    steps = args.steps or (30 if args.quick else 100)
    short = max(2, steps // 5)
    rounds = args.rounds or (3 if args.quick else 5)

    rows, table = [], {}
    t_start = time.perf_counter()
    for kind in args.nets:
        prog = benchmark_program(kind)
        for rate in args.rates:
            x_all = int_inputs(prog, max(args.batches), steps, rate=rate, seed=1).astype(np.uint8)
            for batch in args.batches:
                engines = [e for e in ENGINES if e == "reference" or e in args.engines]
                runners = make_runners(prog, x_all[:batch], engines)
                res = measure(runners, steps, short, rounds)
                table[(kind, rate, batch)] = res
                ref = res["reference"]
                for e in engines:
                    m = res[e]
                    thr = batch / np.median(m["cpu"])
                    ratio = np.median(np.array(m["cpu"]) / np.array(ref["cpu"]))  # ref throughput / engine's
                    rows.append((kind, f"{rate:g}", str(batch), e, f"{thr:,.0f}",
                                 f"{batch / np.median(m['wall']):,.0f}", f"{batch / np.median(m['cpu_run']):,.0f}",
                                 f"{ratio:.2f}", f"{m['rate']:.3f}"))
                print(f"  measured {kind} rate {rate:g} batch {batch} ({time.perf_counter() - t_start:.0f} s)",
                      file=sys.stderr, flush=True)

    head = ("net", "rate", "batch", "engine", "steady/s (CPU)", "steady/s (wall)", "per run/s (CPU)",
            "ref / engine", "out rate")
    print(f"784-256-256-10 CUBA LIF (rec: + 256x256 recurrent per hidden layer), T = {steps} (short {short}), "
          f"{rounds} interleaved rounds, 1 thread; sample-steps per second, medians over rounds; "
          f"'ref / engine' = the reference's throughput over the engine's (median of per-round ratios, CPU time)")
    print("\n".join(table_lines([head] + rows)))

    def ratio(key, peer):
        res = table.get(key)
        if res is None or peer not in res:
            return float("nan")
        return float(np.median(np.array(res[peer]["cpu"]) / np.array(res["reference"]["cpu"])))

    big, small = max(args.batches), min(args.batches)
    print(f"RESULT ref_vs_snntorch_b{big} {ratio(('ff', 0.2, big), 'snntorch'):.2f}")
    print(f"RESULT ref_vs_floor_b{big} {ratio(('ff', 0.2, big), 'floor'):.2f}")
    print(f"RESULT ref_vs_floor_b{small} {ratio(('ff', 0.2, small), 'floor'):.2f}")
    print(f"RESULT event_vs_dense_2pct {product_event_vs_dense(batch=big):.2f}")
    print(f"RESULT event_vs_dense_sim_2pct {ratio(('ff', 0.02, big), 'ref_dense'):.2f}")
    exact = torch_exact(args.nets, args.rates, min(steps, 40))
    cuda = _torch().cuda.is_available()
    if cuda:
        exact = exact and torch_exact(["ff"], [0.2], min(steps, 30), batch=1024, device="cuda")
        c, r_, rr = torch_cuda(steps, short, rounds)
        print(f"torch backend on CUDA ({_torch().cuda.get_device_name()}), ff, rate 0.2, batch 1024: "
              f"{c:,.0f} sample-steps/s steady (wall); numpy reference at batch 1024: {r_:,.0f}")
        print(f"RESULT torch_cuda_b1024 {c:.0f}")
        print(f"RESULT torch_cuda_vs_ref_b1024 {rr:.2f}")
    else:
        print("torch backend on CUDA: not measured (torch.cuda.is_available() is False on this machine)")
    print(f"RESULT torch_backend_exact {int(exact)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
