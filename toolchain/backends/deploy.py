"""``snnc deploy``: the folder a user copies to a Loihi 2 system to run a compiled Program there.

    >>> from toolchain.backends.deploy import deploy
    >>> deploy("build/", "mnist-loihi2/")          # or a Program
    $ cd mnist-loihi2 && python run.py             # Loihi 2 with lava-loihi, else Lava's CPU fixed_pt models

The only open way onto Loihi 2 hardware is a lava-dl *netx* file run by ``lava.lib.dl.netx.hdf5.Network``
(``Loihi2HwCfg`` where Intel's closed lava-loihi is installed). The folder holds:

* ``network.net`` -- the Program written by :func:`toolchain.backends.netx.export_netx` (bit-exact through
  lava-dl 0.6.0's reader; a Program netx cannot hold is refused with the exporter's error, nothing written);
* ``deploy.json`` -- the input encoding and everything else ``run.py`` needs (:func:`deploy_manifest`):
  input port, kind (``spikes`` through ``Network.inp`` or ``bias``: the input layer's ``bias_mant``), shape and
  axis order, dtype, value range, message bits, steps per sample, the ``reset_interval``/``reset_offset`` to pass
  to ``Network``, the layer table (netx layer -> the build's group), the output group and whether its spikes or
  ``v`` are the output, the latency in steps, the toolchain version, the Program's SHA-256
  (:func:`program_sha256`) and the SHA-256 of every data file (``run.py`` refuses a folder that does not match);
* ``run.py`` -- a standalone script (numpy, lava-nc, lava-dl only) that runs an ``.npy`` input and writes an
  ``.npz`` in the layout of ``snnc simulate`` (:data:`RUN_SCRIPT`);
* ``README.md`` -- what the folder expects and how to run and check it;
* ``sample_input.npy`` and ``reference_output.npz`` -- one sample (given, or seeded random) and what the
  toolchain's reference simulator computes for it; ``python run.py`` runs the sample and compares.

Writing is atomic and never deletes a user's file: the folder is built as a temporary sibling and renamed into
place; an existing *empty* folder is replaced the same way; an existing folder written by ``snnc deploy`` (its
``deploy.json`` says so) gets only its own files replaced (``deploy.json`` last, so an interrupted update is caught
by ``run.py``'s hash check) and files a user added there (``output.npz``...) survive; any other non-empty folder,
or a file, is refused with a :class:`DeployError`.

Samples and timing: ``run.py`` runs each sample in a fresh Network (``fresh``: state and synapse buffers start at
zero, exactly ``snnc simulate`` on a batch) or, when the network resets itself every sample
(``reset_interval``, as lava-dl's PilotNet benchmark does), all samples back to back in one (``continuous``:
exactly ``snnc simulate`` on the samples joined in time, :func:`reference_output`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import __version__
from ..errors import InputError, ToolchainError
from ..program import InputPort, Program

__all__ = ["deploy", "deploy_manifest", "program_sha256", "latency_steps", "reference_output", "DeployError",
           "DEPLOY_TARGETS", "DEPLOY_FORMAT", "DEPLOY_VERSION", "RUN_SCRIPT", "DEPLOY_FILES"]

#: targets ``snnc deploy --to`` knows
DEPLOY_TARGETS = ("loihi2",)
DEPLOY_FORMAT = "snn-toolchain-deploy"
DEPLOY_VERSION = 1
NETX_FILE = "network.net"
MANIFEST_FILE = "deploy.json"
RUN_FILE = "run.py"
README_FILE = "README.md"
SAMPLE_FILE = "sample_input.npy"
REFERENCE_FILE = "reference_output.npz"
#: every file ``deploy`` may write (the only files it ever replaces in a folder it wrote before)
DEPLOY_FILES = (NETX_FILE, MANIFEST_FILE, RUN_FILE, README_FILE, SAMPLE_FILE, REFERENCE_FILE)
#: steps of the generated sample when neither ``steps`` nor the Program fixes the steps per sample
DEFAULT_SAMPLE_STEPS = 16
#: bias mantissas are 13-bit signed (Lava's LIF ``bias_mant``)
BIAS_RANGE = (-4096, 4095)


class DeployError(ToolchainError):
    """A deploy folder that cannot be written (a foreign non-empty folder, a file in the way, a bad option)."""


#: ``run.py`` of a deploy folder (``@VERSION@`` is replaced by the toolchain version). It imports numpy, lava and
#: lava-dl only and reads everything about the network from ``deploy.json``.
RUN_SCRIPT = r'''#!/usr/bin/env python3
"""Run ``network.net`` (a lava-dl netx network) on a Loihi 2 chip, or on the CPU with Lava's bit-accurate
``fixed_pt`` models, and write its output spikes to an ``.npz`` file.

Written by ``snnc deploy`` (snn-toolchain @VERSION@); README.md in this folder says what it expects. Needs only
numpy, lava-nc (0.10) and lava-dl (0.6) -- plus Intel's lava-loihi to run on the chip. What this script needs to
know about the network (input port, shapes, reset schedule, layer names) is in ``deploy.json``.

    python run.py                               # sample_input.npy -> output.npz, checked against the reference
    python run.py --input x.npy --out y.npz     # Loihi 2 when lava-loihi is installed, else the CPU
    python run.py --backend cpu --record        # also u, v and spikes of every layer
    python run.py --input x.npy --check ref.npz # compare with `snnc simulate BUILD --input x.npy -o ref.npz`

Output ``.npz`` (the layout of ``snnc simulate``): ``spikes`` (batch, steps, n) -- the output layer's spikes, or
its ``v`` when the output does not spike -- and ``steps_run`` (batch,); with ``--record`` also ``spikes/<layer>``,
``u/<layer>`` and ``v/<layer>`` (batch, steps, n) of every layer, named as in the toolchain's build.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = "deploy.json"
FORMAT = "snn-toolchain-deploy"
VERSIONS = (1,)


class RunError(Exception):
    """Bad input, or a folder that does not match its deploy.json: printed as one line, exit status 1."""


# --------------------------------------------------------------------------------------------- the folder
def load_manifest(folder: Path) -> Dict[str, Any]:
    """``deploy.json`` of ``folder``, checked for its format and version."""
    path = folder / MANIFEST
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read: {exc}") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise RunError(f"{path}: not a {FORMAT} manifest")
    if man.get("version") not in VERSIONS:
        raise RunError(f"{path}: manifest version {man.get('version')!r}; this script reads {VERSIONS}")
    return man


def check_file(folder: Path, man: Dict[str, Any], name: str) -> Path:
    """``folder/name``, after checking that its SHA-256 is the one deploy.json recorded for it."""
    path = folder / name
    if not path.is_file():
        raise RunError(f"{path}: missing (copy the whole folder)")
    want = man["files"].get(name)
    if want is not None:
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise RunError(f"{path}: does not match deploy.json (sha256 {got[:16]}..., recorded {want[:16]}...): "
                           "the folder was changed or copied incompletely; deploy it again")
    return path


# ---------------------------------------------------------------------------------------------- the input
def read_array(path: Path, port: str) -> np.ndarray:
    """The input array in ``path``: ``.npy``, or ``.npz`` holding one array (or one named after the port)."""
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if port in z.files:
                    return z[port]
                if len(z.files) == 1:
                    return z[z.files[0]]
                raise RunError(f"{path}: holds {sorted(z.files)}; expected one array, or one named '{port}'")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"{path}: cannot read as a numpy array: {exc}") from None


def prepare_input(x: np.ndarray, man: Dict[str, Any], steps: Optional[int]) -> Tuple[np.ndarray, int]:
    """Check ``x`` against deploy.json's input and return ``(data, steps)``.

    Spike input: (batch, time, *shape) or (time, *shape), 0/1 -> int32 (batch, steps, n), padded with zeros or cut
    to ``steps`` (default: the array's time axis). Bias input: (batch, *shape) or (*shape) bias mantissas (or
    (batch, time, *shape) constant over time) -> int32 (batch, n); ``steps`` defaults to deploy.json's steps per
    sample. ``n`` is the flattening in C order of ``shape`` (the toolchain's and netx's order)."""
    inp = man["input"]
    shape = tuple(inp["shape"])
    dims = ", ".join(str(s) for s in shape)
    if x.dtype != np.bool_ and not np.issubdtype(x.dtype, np.integer):
        raise RunError(f"input: expected an integer or bool array, got dtype {x.dtype}")
    lo, hi = inp["range"]
    if inp["kind"] == "spikes":
        if x.ndim == len(shape) + 1:
            x = x[None]
        if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise RunError(f"input: expected spikes of shape (batch, time, {dims}) or (time, {dims}), got {x.shape}")
        t_in = int(x.shape[1])
        steps = t_in if steps is None else steps
        x = x.reshape(x.shape[0], t_in, -1).astype(np.int64)
        if steps > t_in:
            x = np.concatenate([x, np.zeros((x.shape[0], steps - t_in, x.shape[2]), x.dtype)], axis=1)
        x = x[:, :steps]
    else:
        if x.ndim == len(shape):
            x = x[None]
        if x.ndim == len(shape) + 2 and tuple(x.shape[2:]) == shape:
            if x.shape[1] and not np.all(x == x[:, :1]):
                raise RunError("input: a bias input holds one value per neuron and sample, (batch, "
                               f"{dims}); this array changes over time, which this script does not feed")
            x = x[:, 0]
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise RunError(f"input: expected bias mantissas of shape (batch, {dims}) or ({dims}), got {x.shape}")
        x = x.reshape(x.shape[0], -1).astype(np.int64)
        steps = steps if steps is not None else man.get("steps_per_sample")
        if steps is None:
            raise RunError("a bias input fixes no number of steps: give --steps")
    if x.shape[0] == 0:
        raise RunError("input: the batch holds no sample")
    if steps < 1:
        raise RunError(f"--steps must be at least 1, got {steps}")
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        raise RunError(f"input: values must lie in [{lo}, {hi}] ({inp['dtype']}), got [{int(x.min())}, "
                       f"{int(x.max())}]")
    return x.astype(np.int32), int(steps)


# ------------------------------------------------------------------------------------------------- Lava
def loihi2_available() -> bool:
    """True when Intel's lava-loihi (the Loihi 2 compiler) is importable; then also sets the environment
    (SLURM, LOIHI_GEN, PARTITION) as ``lava.utils.system.Loihi2.is_loihi2_available`` does."""
    try:
        from lava.magma.compiler.subcompilers.nc.ncproc_compiler import CompilerOptions  # noqa: F401
    except ImportError:
        return False
    try:
        from lava.utils.system import Loihi2
    except ImportError:
        return True
    return bool(Loihi2.is_loihi2_available)


def lava_modules(hardware: bool) -> Dict[str, Any]:
    """The Lava and lava-dl classes this script uses (imported here: lava-dl takes a while to import)."""
    try:
        from lava.lib.dl.netx.hdf5 import Network
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.monitor.process import Monitor
    except ImportError as exc:
        raise RunError(f"Lava / lava-dl are not importable ({exc}); install lava-nc 0.10 and lava-dl 0.6") from None
    mods = dict(Network=Network, RunSteps=RunSteps, Loihi2HwCfg=Loihi2HwCfg, Loihi2SimCfg=Loihi2SimCfg,
                Sink=Sink, Source=Source, Monitor=Monitor, eio=None)
    if hardware:  # spikes between the host and the chip go through lava-loihi's embedded-I/O adapters
        try:
            from lava.proc import embedded_io as eio
            mods["eio"] = eio
        except ImportError:
            pass
    return mods


def _connect(L: Dict[str, Any], out_port: Any, in_port: Any, shape: Tuple[int, ...], adapter: str) -> None:
    """out_port -> in_port, through lava-loihi's spike adapter (``PyToNxAdapter`` into the chip,
    ``NxToPyAdapter`` out of it) when running on Loihi 2, directly on the CPU."""
    if L["eio"] is not None:
        ad = getattr(L["eio"].spike, adapter)(shape=shape)
        out_port.connect(ad.inp)
        ad.out.connect(in_port)
    else:
        out_port.connect(in_port)


def run_network(folder: Path, man: Dict[str, Any], L: Dict[str, Any], hardware: bool, samples: np.ndarray,
                steps: int, record: bool) -> Dict[str, np.ndarray]:
    """Build ONE ``netx.hdf5.Network`` and run ``samples`` through it back to back, ``steps`` steps each.

    Spike samples (k, steps, n) go through a RingBuffer into ``net.inp``; bias samples (k, n) are written to the
    input layer's ``neuron.bias_mant`` before each sample's steps (``.init`` before the first run, as lava-dl's
    tests do, ``.set`` between runs). Returns ``{key: (k, steps, n)}`` arrays (keys as in the output file)."""
    inp, layers, out = man["input"], man["layers"], man["output"]
    reset = man["reset"]
    kwargs = {}
    if reset["interval"]:
        kwargs = dict(reset_interval=int(reset["interval"]), reset_offset=int(reset["offset"]))
    net = L["Network"](net_config=str(folder / man["netx_file"]), **kwargs)
    if len(net.layers) != len(layers):
        raise RunError(f"{man['netx_file']} builds {len(net.layers)} layers, deploy.json lists {len(layers)}: the "
                       "files do not belong together")
    k, total = int(samples.shape[0]), int(samples.shape[0]) * steps
    bias_var = None
    if inp["kind"] == "spikes":
        shape = tuple(net.inp.shape)
        data = samples.reshape((total,) + shape)  # C order: the Program's flattening is netx's
        src = L["Source"](data=np.ascontiguousarray(np.moveaxis(data, 0, -1)))
        _connect(L, src.s_out, net.inp, shape, "PyToNxAdapter")
    else:
        bias_var = net.layers[0].neuron.bias_mant
        bias_var.init = samples[0].reshape(bias_var.shape)
    last = len(layers) - 1
    spike_layers = list(range(len(layers))) if record else ([last] if out["kind"] == "spikes" else [])
    state_layers = list(range(len(layers))) if record else ([last] if out["kind"] == "v" else [])
    sinks = {}
    for i in spike_layers:
        lay = net.layers[i]
        sink = L["Sink"](shape=tuple(lay.out.shape), buffer=total)
        _connect(L, net.out if i == last else lay.out, sink.a_in, tuple(lay.out.shape), "NxToPyAdapter")
        sinks[i] = sink
    monitors = {}
    for i in state_layers:  # one Monitor per Var: a Monitor with two probes fails to compile in Lava 0.10.0
        for var in ("u", "v") if record else ("v",):
            mon = L["Monitor"]()
            mon.probe(getattr(net.layers[i].neuron, var), total)
            monitors[(i, var)] = mon
    cfg = L["Loihi2HwCfg"]() if hardware else L["Loihi2SimCfg"](select_tag="fixed_pt")
    result: Dict[str, np.ndarray] = {}
    try:
        for j in range(k):
            if bias_var is not None and j > 0:
                bias_var.set(samples[j].reshape(bias_var.shape))
            net.run(condition=L["RunSteps"](num_steps=steps), run_cfg=cfg)
        for i, sink in sinks.items():
            a = np.moveaxis(np.asarray(sink.data.get()), -1, 0).reshape(k, steps, -1)
            result[f"spikes/{layers[i]['group']}"] = (a != 0).astype(np.uint8)
        for (i, var), mon in monitors.items():
            (per_proc,) = mon.get_data().values()
            result[f"{var}/{layers[i]['group']}"] = np.asarray(per_proc[var]).reshape(k, steps, -1).astype(np.int32)
    finally:
        net.stop()
    out_key = f"{'spikes' if out['kind'] == 'spikes' else 'v'}/{out['group']}"
    result["spikes"] = result[out_key]
    if not record:
        del result[out_key]
    return result


def choose_mode(mode: str, man: Dict[str, Any], batch: int, steps: int) -> str:
    """``fresh``: every sample in a new Network (state and synapse buffers start at zero, as in ``snnc simulate``
    with a batch); ``continuous``: all samples back to back in one Network (lava-dl's way with reset_interval;
    equals ``snnc simulate`` on the samples joined in time). ``auto``: continuous when the network resets itself
    every ``steps`` steps (reset_interval divides steps) and there is more than one sample, else fresh."""
    if mode != "auto":
        return mode
    interval = man["reset"]["interval"]
    return "continuous" if batch > 1 and interval and steps % interval == 0 else "fresh"


def run(folder: Path, man: Dict[str, Any], x: np.ndarray, steps: int, mode: str, record: bool, hardware: bool,
        log: Any) -> Dict[str, np.ndarray]:
    """Run every sample of ``x`` (see :func:`prepare_input`) and return the arrays of the output file."""
    L = lava_modules(hardware)
    batch = int(x.shape[0])
    if mode == "continuous":
        parts = [run_network(folder, man, L, hardware, x, steps, record)]
    else:
        parts = []
        for j in range(batch):
            parts.append(run_network(folder, man, L, hardware, x[j:j + 1], steps, record))
            log(f"sample {j + 1}/{batch} done")
    res = {key: np.concatenate([p[key] for p in parts], axis=0) for key in parts[0]}
    res["steps_run"] = np.full(batch, steps, np.int64)
    return res


def compare(res: Dict[str, np.ndarray], ref_path: Path) -> Tuple[bool, str]:
    """Compare every array present in both ``res`` and the reference file; ``(equal, one-line summary)``."""
    try:
        with np.load(ref_path, allow_pickle=False) as z:
            ref = {key: z[key] for key in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"{ref_path}: cannot read: {exc}") from None
    keys = [key for key in res if key in ref and key != "steps_run"]
    if "spikes" not in keys:
        raise RunError(f"{ref_path}: holds no 'spikes' array to compare with")
    for key in keys:
        a, b = np.asarray(res[key]), np.asarray(ref[key])
        if a.shape != b.shape:
            return False, f"'{key}': shape {a.shape} here, {b.shape} in {ref_path.name}"
        bad = np.argwhere(a.astype(np.int64) != b.astype(np.int64))
        if bad.size:
            s, t, n = (int(v) for v in bad[0])
            return False, (f"'{key}' first differs at sample {s}, step {t}, neuron {n}: {int(a[s, t, n])} here, "
                           f"{int(b[s, t, n])} in {ref_path.name} ({len(bad)} entries differ)")
    return True, f"{len(keys)} array(s) equal to {ref_path.name} at every step: {', '.join(keys)}"


def save(path: Path, res: Dict[str, np.ndarray], backend: str, mode: str) -> None:
    """Write the output ``.npz`` to a temporary sibling and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, backend=np.array(backend), mode=np.array(mode), **res)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", "-i", type=Path, default=None,
                    help="input .npy/.npz (default: the folder's sample input); see README.md for its layout")
    ap.add_argument("--steps", "-T", type=int, default=None,
                    help="steps per sample (default: the input's time axis; for a bias input deploy.json's)")
    ap.add_argument("--out", "-o", type=Path, default=Path("output.npz"), help="output .npz (default output.npz)")
    ap.add_argument("--record", action="store_true", help="also record spikes, u and v of every layer")
    ap.add_argument("--backend", choices=("auto", "loihi2", "cpu"), default="auto",
                    help="auto: Loihi 2 when lava-loihi is installed, else the CPU (Loihi2SimCfg fixed_pt)")
    ap.add_argument("--mode", choices=("auto", "fresh", "continuous"), default="auto",
                    help="samples in fresh networks, or back to back in one (see README.md)")
    ap.add_argument("--check", type=Path, default=None,
                    help="compare with this .npz (e.g. from `snnc simulate`); exit status 1 when they differ")
    ap.add_argument("--no-check", action="store_true", help="do not compare the sample with its reference")
    ap.add_argument("--folder", type=Path, default=HERE, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    log = (lambda msg: print(f"run.py: {msg}", file=sys.stderr, flush=True))
    try:
        folder = args.folder.resolve()
        man = load_manifest(folder)
        check_file(folder, man, man["netx_file"])
        sample = man.get("sample") or {}
        if args.input is None:
            if not sample:
                raise RunError("this folder has no sample input: give --input")
            in_path = check_file(folder, man, sample["input"])
        else:
            in_path = args.input
        out_dir = args.out.parent if str(args.out.parent) else Path(".")
        if args.out.is_dir() or not out_dir.is_dir():
            raise RunError(f"--out {args.out}: give a file name in an existing folder")
        x, steps = prepare_input(read_array(in_path, man["input"]["port"]), man,
                                 args.steps if args.steps is not None
                                 else (sample.get("steps") if args.input is None else None))
        check = args.check
        if check is None and args.input is None and not args.no_check and sample.get("reference"):
            check = check_file(folder, man, sample["reference"])
        if args.backend == "auto":
            hardware = loihi2_available()
        else:
            hardware = args.backend == "loihi2"
            if hardware and not loihi2_available():
                raise RunError("--backend loihi2: lava-loihi (Intel's Loihi 2 compiler) is not installed here")
        backend = "loihi2 (Loihi2HwCfg)" if hardware else "cpu (Loihi2SimCfg fixed_pt)"
        mode = choose_mode(args.mode, man, int(x.shape[0]), steps)
        interval = man["reset"]["interval"]
        if mode == "continuous" and x.shape[0] > 1 and (not interval or steps % interval):
            log(f"warning: continuous mode with reset_interval {interval} and {steps} steps per sample: the "
                "network's state carries over between samples")
        if hardware and args.record:
            log("note: --record reads u and v through Lava Monitors, which depend on lava-loihi's probe support")
        if hardware and mode == "fresh" and x.shape[0] > 1:
            log("note: fresh mode compiles the network for every sample; with a reset_interval, --mode "
                "continuous runs all samples in one")
        log(f"{x.shape[0]} sample(s) x {steps} steps on {backend}, {mode} mode")
        t0 = time.perf_counter()
        res = run(folder, man, x, steps, mode, args.record, hardware, log)
        save(args.out, res, backend, mode)
        what = "spikes" if man["output"]["kind"] == "spikes" else "v (readout)"
        log(f"output '{man['output']['group']}' {what}; {time.perf_counter() - t0:.1f} s; wrote {args.out}")
        if check is not None:
            ok, msg = compare(res, Path(check))
            print(f"bit-exact: {'yes' if ok else 'no'}; {msg}")
            if not ok:
                return 1
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


# ------------------------------------------------------------------------------------------ what is deployed
def program_sha256(program: Program) -> str:
    """SHA-256 of the Program's content: its ``program.json`` document as a build folder stores it (keys sorted,
    with the SHA-256 of its ``arrays.npz``), so a Program and the same Program saved and loaded hash alike."""
    from .._program_io import _encode
    from ..build_io import npz_bytes, portable
    doc, arrays = _encode(program)
    doc = portable(doc)
    doc["arrays_sha256"] = hashlib.sha256(npz_bytes(arrays)).hexdigest()
    return hashlib.sha256(json.dumps(doc, sort_keys=True, allow_nan=False).encode("utf-8")).hexdigest()


def latency_steps(program: Program) -> int:
    """Steps from an input at step ``t`` to the first step ``t + L`` at which it can change the output group:
    one per synapse layer on the netx chain plus its (smallest) delay; a bias input reaches its own group at the
    same step. Raises the exporter's :class:`ToolchainError` for a Program that is not a netx chain."""
    from .netx import netx_chain
    chain = netx_chain(program)
    links = chain[1:] if program.inputs[0].kind == "bias" else chain
    return int(sum(1 + min(s.delay for s in link.ff) for link in links))


def choose_mode(mode: str, reset_interval: int, batch: int, steps: int) -> str:
    """How ``run.py`` runs several samples (the same rule is in the script): ``fresh`` (a new Network per sample)
    or ``continuous`` (back to back in one); ``auto`` is continuous when there is more than one sample and the
    network resets itself every ``steps`` steps (``reset_interval`` divides ``steps``)."""
    if mode not in ("auto", "fresh", "continuous"):
        raise DeployError(f"must be auto, fresh or continuous, got {mode!r}", field="mode")
    if mode != "auto":
        return mode
    return "continuous" if batch > 1 and reset_interval and steps % reset_interval == 0 else "fresh"


def reference_output(program: Program, x: Any, steps: Optional[int] = None, mode: str = "auto"
                     ) -> Dict[str, np.ndarray]:
    """What ``run.py`` writes for input ``x`` in ``mode``, computed by :func:`toolchain.sim.reference.simulate`:
    ``{"spikes": (B, T, n) output spikes (or v of a readout), "steps_run": (B,)}``.

    ``fresh``: ``simulate(program, x)`` (every sample from zero state). ``continuous``: the samples joined in time
    as one sample of ``B * T`` steps (one Network, state carried over; the network's own ``reset_interval``
    separates them), cut back into (B, T, n)."""
    from ..sim.reference import prepare_inputs, simulate
    port = _single_port(program)
    inputs, batch, steps = prepare_inputs(program, {port.name: np.asarray(x)}, steps)
    interval = max(g.reset_interval for g in program.groups.values())
    if choose_mode(mode, interval, batch, steps) == "continuous" and batch > 1:
        joined = np.ascontiguousarray(inputs[port.name]).reshape((1, batch * steps) + tuple(port.shape))
        out = simulate(program, {port.name: joined}).output.reshape(batch, steps, -1)
    else:
        out = simulate(program, {port.name: np.asarray(x)}, steps=steps).output
    return {"spikes": np.asarray(out), "steps_run": np.full(batch, steps, np.int64)}


def _single_port(program: Program) -> InputPort:
    if len(program.inputs) != 1:
        raise DeployError(f"a deploy folder feeds one input port; the program has {len(program.inputs)}",
                          field="inputs")
    return program.inputs[0]


def _layout(port: InputPort, netx_shape: List[int]) -> str:
    """How the input array's axes are laid out, in words (for deploy.json and the README)."""
    flat = "flattened in C order (last axis fastest), the order of the build's input neurons"
    if len(port.shape) == 3 and list(port.shape) == list(netx_shape):
        return f"(W, H, C) = (x, y, channel), lava-dl's order; {flat} and of netx's arrays"
    if len(netx_shape) == 1:
        if len(port.shape) == 1:
            return "a flat vector in netx's flatten order (the build's input order)"
        return f"{flat}; netx's input is that flat vector"
    return f"{flat}; netx's input {tuple(netx_shape)} holds the same flat vector in C order"


def _netx_table(path: Path) -> List[Dict[str, Any]]:
    """The layers lava-dl's reader builds from the file (``Network.layers``, in order): ``index`` (the file's
    ``/layer/<i>``), ``type``, ``shape`` (netx's (W, H, C) or (n,)) and ``group`` (the exporter's attribute)."""
    import h5py
    built = []
    with h5py.File(path, "r") as f:
        for i in sorted(f["layer"], key=int):
            h = f["layer"][i]
            kind = h["type"][0].decode() if isinstance(h["type"][0], bytes) else str(h["type"][0])
            if kind == "flatten" or (kind == "input" and "neuron" not in h):
                continue
            grp = h.attrs.get("group")
            built.append({"index": int(i), "type": kind, "shape": [int(s) for s in h["shape"][()][::-1]],
                          "group": grp.decode() if isinstance(grp, bytes) else grp})
        first = f["layer"][sorted(f["layer"], key=int)[0]]
        in_shape = [int(s) for s in first["shape"][()][::-1]]
    return built + [{"input_shape": in_shape}]


def _input_spec(program: Program, net_input_shape: List[int]) -> Dict[str, Any]:
    from .netx import NETX_BIAS_EXP
    port = _single_port(program)
    spec: Dict[str, Any] = {"port": port.name, "kind": port.kind, "shape": list(port.shape),
                            "layout": _layout(port, net_input_shape), "netx_shape": net_input_shape,
                            "num_message_bits": int(port.num_message_bits)}
    if port.kind == "spikes":
        spec.update(dtype="bool (0/1 binary spikes; any integer dtype with values 0 and 1)", range=[0, 1],
                    fed_to="Network.inp through a RingBuffer: one column per step",
                    file_shape="(batch, time, *shape) or (time, *shape)")
    else:
        spec.update(dtype="int16 (13-bit signed bias mantissa)", range=list(BIAS_RANGE),
                    fed_to="Network.layers[0].neuron.bias_mant (the input layer's bias), once per sample: "
                           "lava-dl's way of feeding a frame",
                    target_group=port.target, bias_exp=NETX_BIAS_EXP,
                    file_shape="(batch, *shape) or (*shape); (batch, time, *shape) only when constant over time")
    return spec


def steps_per_sample(program: Program, steps: Optional[int] = None) -> Optional[int]:
    """Steps per sample: ``steps`` when given, else the Program's ``reset_interval`` (the network resets itself
    every sample), else a netx source file's ``simulation/tSample``, else None (``run.py`` then takes the
    input's time axis)."""
    if steps is not None:
        return int(steps)
    interval = max((g.reset_interval for g in program.groups.values()), default=0)
    if interval:
        return int(interval)
    sim = (program.metadata.get("netx") or {}).get("simulation") or {}
    t_sample = sim.get("tSample") if isinstance(sim, dict) else None
    t_sample = np.asarray(t_sample).reshape(-1) if t_sample is not None else np.zeros(0)
    if t_sample.size != 1 or not np.issubdtype(t_sample.dtype, np.number) or not t_sample[0] >= 1:
        return None
    return int(t_sample[0])


def deploy_manifest(program: Program, net_path: Union[str, os.PathLike], steps: Optional[int] = None,
                    sample: Optional[Dict[str, Any]] = None,
                    files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The ``deploy.json`` document for ``program`` exported to ``net_path`` (checked against the file's layers).

    ``steps``: steps per sample (:func:`steps_per_sample`). ``sample``: the sample
    entry (file names, steps, batch, mode); ``files``: SHA-256 of each data file."""
    from .netx import netx_chain, netx_network_args
    _single_port(program)
    chain = netx_chain(program)
    table = _netx_table(Path(net_path))
    in_shape = table.pop()["input_shape"]
    names = [link.group.name for link in chain]
    if len(table) != len(names) or any(t["group"] not in (None, n) for t, n in zip(table, names)):
        raise DeployError(f"the netx file's layers {[t['group'] for t in table]} are not the program's chain "
                          f"{names} (exporter and deploy disagree)", file=str(net_path), field="layer")
    net_args = netx_network_args(program)
    interval = int(net_args.get("reset_interval") or 0)
    steps = steps_per_sample(program, steps)
    out = program.groups[program.output]
    src = program.metadata.get("file")
    return {
        "format": DEPLOY_FORMAT, "version": DEPLOY_VERSION, "target": "loihi2",
        "toolchain_version": __version__, "program_sha256": program_sha256(program),
        "program_target": program.target, "source": os.path.basename(src) if isinstance(src, str) else None,
        "dt": float(program.dt), "netx_file": NETX_FILE,
        "input": _input_spec(program, in_shape),
        "steps_per_sample": None if steps is None else int(steps),
        "reset": {"interval": interval, "offset": int(net_args.get("reset_offset") or 0) if interval else 0,
                  "note": "pass as netx.hdf5.Network(net_config, reset_interval=interval, reset_offset=offset) "
                          "when interval > 0: layer k resets u and v when time_step % interval == "
                          "(offset + 1 + k) % interval"},
        "layers": [{"layer": k, "file_layer": t["index"], "type": t["type"], "group": n,
                    "shape": list(program.groups[n].shape), "neurons": program.groups[n].size}
                   for k, (t, n) in enumerate(zip(table, names))],
        "output": {"group": out.name, "layer": len(names) - 1, "kind": "spikes" if out.spiking else "v",
                   "shape": list(out.shape), "neurons": out.size},
        "latency_steps": latency_steps(program),
        "compile_output_latency_steps": program.metadata.get("output_latency_steps"),
        "sample": sample, "files": dict(files or {}),
    }


# --------------------------------------------------------------------------------------------- the sample
def _as_program(program_or_build: Union[Program, str, os.PathLike]) -> Program:
    if isinstance(program_or_build, Program):
        return program_or_build
    return Program.load(program_or_build)


def _sample(program: Program, sample_input: Any, steps: Optional[int], per_sample: Optional[int],
            seed: int) -> Tuple[np.ndarray, int]:
    """The sample to ship, with a batch axis: ``(B, T, *shape)`` spikes or ``(B, *shape)`` biases, and its
    steps. ``steps``: what the user asked for; ``per_sample``: :func:`steps_per_sample`. A given sample is
    checked as the simulator checks it (:class:`InputError`); a spike sample is padded or cut to ``steps``."""
    from ..sim.reference import prepare_inputs
    port = _single_port(program)
    shape = tuple(port.shape)
    if sample_input is None:
        r = np.random.default_rng(seed)
        t = per_sample or DEFAULT_SAMPLE_STEPS
        if port.kind == "spikes":
            return (r.random((1, t) + shape) < 0.2).astype(np.uint8), t
        hi = int(min(BIAS_RANGE[1], max(1, 2 * int(program.groups[port.target].vth.max()))))
        return r.integers(0, hi + 1, size=(1,) + shape).astype(np.int16), t
    x = np.asarray(sample_input)
    if port.kind == "spikes" and x.ndim == len(shape) + 1:
        x = x[None]
    if port.kind == "bias":
        if x.ndim == len(shape):
            x = x[None]
        if x.ndim == len(shape) + 2:
            if x.shape[1] and not np.all(x == x[:, :1]):
                raise InputError("a bias input sample holds one value per neuron and sample (batch, *shape); "
                                 "run.py does not feed biases that change over time", node=port.name,
                                 field="sample")
            x = x[:, 0]
    if port.kind == "bias" and steps is None:
        steps = per_sample or DEFAULT_SAMPLE_STEPS
    _, _, t = prepare_inputs(program, {port.name: x}, steps)
    if t < 1:
        raise InputError("the sample holds no step", node=port.name, field="sample")
    if port.kind == "spikes":
        x = x.astype(np.uint8) if x.dtype == np.bool_ else x
        if steps is not None and steps != x.shape[1]:  # ship exactly what is run
            pad = np.zeros((x.shape[0], max(steps - x.shape[1], 0)) + shape, x.dtype)
            x = np.concatenate([x, pad], axis=1)[:, :steps]
    return np.ascontiguousarray(x), int(t)


# ------------------------------------------------------------------------------------------------ writing
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_text(path: Path, text: str, mode: int = 0o666) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & ~_umask())
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _write_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "xb") as fh:
        np.save(fh, arr, allow_pickle=False)


def _write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    with open(path, "xb") as fh:
        np.savez_compressed(fh, **arrays)


def _folder_state(out: Path) -> Tuple[str, List[str]]:
    """``("absent" | "empty" | "ours", files we wrote there before)``; raises :class:`DeployError` for a file
    in the way or a non-empty folder that ``snnc deploy`` did not write."""
    if not out.exists() and not out.is_symlink():
        return "absent", []
    if not out.is_dir():
        raise DeployError("exists and is not a folder; refusing to overwrite it", file=str(out), field="output")
    entries = list(out.iterdir())
    if not entries:
        return "empty", []
    try:
        old = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict) or old.get("format") != DEPLOY_FORMAT:
        raise DeployError(f"exists, is not empty and was not written by snnc deploy (no {MANIFEST_FILE} of ours); "
                          "refusing to write into it: give a new or empty folder", file=str(out), field="output")
    written = old.get("written")
    ours = [f for f in (written if isinstance(written, list) else DEPLOY_FILES) if f in DEPLOY_FILES]
    return "ours", ours


def _install(tmp: Path, out: Path, state: str, old_files: List[str]) -> None:
    """Move the finished folder ``tmp`` to ``out`` (see the module docstring)."""
    if state in ("absent", "empty"):
        try:
            os.rename(tmp, out)  # onto nothing or onto an empty folder: atomic
        except OSError as exc:
            raise DeployError(f"cannot put the folder in place ({exc.strerror}); was it changed meanwhile?",
                              file=str(out), field="output") from None
        return
    new = sorted(p.name for p in tmp.iterdir())
    clash = [f for f in new if (out / f).exists() and f not in old_files]
    if clash:
        raise DeployError(f"'{clash[0]}' there is not a file snnc deploy wrote; refusing to replace it",
                          file=str(out), field="output")
    for name in [f for f in new if f != MANIFEST_FILE] + [MANIFEST_FILE]:  # the manifest last
        os.replace(tmp / name, out / name)
    for name in old_files:
        if name not in new:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out / name)


def deploy(program_or_build: Union[Program, str, os.PathLike], out_dir: Union[str, os.PathLike],
           target: str = "loihi2", *, steps: Optional[int] = None, sample_input: Any = None,
           sample: bool = True, seed: int = 0) -> Path:
    """Write the folder to copy to a Loihi 2 system (see the module docstring); returns its path.

    ``program_or_build``: a :class:`Program` or a build folder (:meth:`Program.load`). ``target``: one of
    :data:`DEPLOY_TARGETS`; the Program must have been compiled for it. ``steps``: steps per sample (see
    :func:`deploy_manifest`). ``sample_input``: the sample to ship ((B, T, *shape) spikes or (B, *shape) bias
    mantissas, batch axis optional); default a seeded random one (``seed``); ``sample=False`` ships none.

    Everything that can fail on the Program (the exporter's checks, the sample) fails before anything is
    written; raises the exporter's :class:`ToolchainError` for a Program netx cannot hold and
    :class:`DeployError` for a folder that cannot be written.
    """
    from ..build_io import build_lock
    from .netx import check_netx, export_netx
    if target not in DEPLOY_TARGETS:
        raise DeployError(f"unknown deploy target {target!r} (known: {', '.join(DEPLOY_TARGETS)})", field="target")
    program = _as_program(program_or_build)
    if program.target != target:
        raise DeployError(f"the program was compiled for target '{program.target}', not '{target}'; compile it "
                          f"with --target {target}", field="target")
    if steps is not None and steps < 1:
        raise DeployError(f"steps per sample must be at least 1, got {steps}", field="steps")
    _single_port(program)
    check_netx(program)  # the exporter's own refusal, before anything is written
    out = Path(out_dir)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise DeployError(f"the folder '{parent}' it would go in does not exist", file=str(out), field="output")
    _folder_state(out)  # refuse early, before the simulation of the sample
    shipped: Optional[Tuple[np.ndarray, int]] = None
    ref = None
    if sample or sample_input is not None:
        from .netx import netx_network_args
        x, t = _sample(program, sample_input, steps, steps_per_sample(program, steps), seed)
        interval = int(netx_network_args(program).get("reset_interval") or 0)
        mode = choose_mode("auto", interval, int(x.shape[0]), t)
        ref = reference_output(program, x, t, mode)
        shipped = (x, t)
    with build_lock(out):
        state, old_files = _folder_state(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.deploy-", dir=parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the folder follows the umask
            export_netx(program, tmp / NETX_FILE)
            os.chmod(tmp / NETX_FILE, 0o666 & ~_umask())  # the exporter's temporary file is 0600
            files = {NETX_FILE: _sha256(tmp / NETX_FILE)}
            sample_entry = None
            if shipped is not None and ref is not None:
                x, t = shipped
                _write_npy(tmp / SAMPLE_FILE, x)
                _write_npz(tmp / REFERENCE_FILE, ref)
                files[SAMPLE_FILE] = _sha256(tmp / SAMPLE_FILE)
                files[REFERENCE_FILE] = _sha256(tmp / REFERENCE_FILE)
                sample_entry = {"input": SAMPLE_FILE, "reference": REFERENCE_FILE, "batch": int(x.shape[0]),
                                "steps": int(t), "mode": mode,
                                "origin": "given" if sample_input is not None else f"random (seed {seed})"}
            manifest = deploy_manifest(program, tmp / NETX_FILE, steps, sample_entry, files)
            manifest["written"] = sorted(list(files) + [RUN_FILE, README_FILE, MANIFEST_FILE])
            _write_text(tmp / RUN_FILE, RUN_SCRIPT.replace("@VERSION@", __version__), 0o777)
            _write_text(tmp / README_FILE, _readme(manifest))
            _write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1, allow_nan=False) + "\n")
            _install(tmp, out, state, old_files)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------------- README
def _readme(m: Dict[str, Any]) -> str:
    """README.md of a deploy folder, from its manifest."""
    inp, out, reset = m["input"], m["output"], m["reset"]
    shape = ", ".join(str(s) for s in inp["shape"])
    sps = m["steps_per_sample"]
    layers = "\n".join(f"| {lay['layer']} | {lay['type']} | {lay['group']} | {tuple(lay['shape'])} |"
                       for lay in m["layers"])
    if inp["kind"] == "spikes":
        feed = (f"**binary spikes** for input port `{inp['port']}`: an `.npy` array of shape `(batch, time, {shape})` "
                f"(or `(time, {shape})` for one sample), values 0/1 (bool or any integer dtype). Layout: "
                f"{inp['layout']}. `run.py` feeds step `t` of each sample as one column of a `RingBuffer` into "
                f"`Network.inp` (netx shape {tuple(inp['netx_shape'])}).")
    else:
        feed = (f"**bias mantissas** of the input layer (group `{inp['target_group']}`), as lava-dl feeds a frame "
                f"(`net.in_layer.neuron.bias_mant.init = image`): an `.npy` array of shape `(batch, {shape})` (or "
                f"`({shape})` for one sample), integers in [{inp['range'][0]}, {inp['range'][1]}] (13-bit signed; "
                f"the neuron adds `mantissa << {inp['bias_exp']}` to `v` every step). Layout: {inp['layout']}. One "
                "value per sample: it holds for all the sample's steps.")
    steps_txt = (f"{sps} steps per sample" if sps else
                 "steps per sample: the input's time axis, or `--steps T`")
    if reset["interval"]:
        reset_txt = (f"The network resets `u` and `v` of every layer every {reset['interval']} steps (lava-dl's "
                     f"`netx.hdf5.Network(net_config='network.net', reset_interval={reset['interval']}, "
                     f"reset_offset={reset['offset']})`; `run.py` passes these). With more than one sample and a "
                     "steps-per-sample that the interval divides, `run.py` runs the samples back to back in one "
                     "network (`--mode continuous`), as lava-dl's benchmarks do; `--mode fresh` builds a new "
                     "network per sample instead.")
    else:
        reset_txt = ("The network has no periodic reset: `run.py` builds a fresh network for every sample "
                     "(`--mode fresh`; state starts at zero, as in the toolchain's simulator). `--mode continuous` "
                     "runs them back to back, carrying state over.")
    sample = m.get("sample")
    sample_txt = ""
    if sample:
        sample_txt = (f"\n`{sample['input']}` is one input ({sample['origin']}, {sample['batch']} sample(s) x "
                      f"{sample['steps']} steps) and `{sample['reference']}` what the toolchain's reference "
                      "simulator computes for it: plain `python run.py` runs the sample and prints `bit-exact: yes` "
                      "when the run reproduces it at every step.\n")
    what = "spikes" if out["kind"] == "spikes" else "membrane voltage `v` (a non-spiking readout)"
    if inp["kind"] == "spikes":
        steps_flag, compare_note, joined = "", "", "`x.reshape(1, batch * steps, ...)`"
    else:
        steps_flag = f" --steps {sps}" if sps else " --steps T"
        compare_note = (f"\nFor both tools, write a batch of bias inputs as `(batch, steps, {shape})`, each sample's\n"
                        "bias repeated over its steps (`np.repeat(x[:, None], steps, axis=1)`): `run.py` takes that\n"
                        "form when it is constant over time, and `snnc simulate` reads it unambiguously.\n")
        joined = "each sample's bias repeated over its steps, then joined"
    sample_row = (f"| `{sample['input']}`, `{sample['reference']}` | a sample input and the toolchain's output for "
                  "it |" if sample else "")
    return f"""# Loihi 2 deploy folder

Written by `snnc deploy` (snn-toolchain {m['toolchain_version']}) from a build with Program SHA-256
`{m['program_sha256'][:16]}...`{f" (source `{m['source']}`)" if m.get('source') else ""}.

| file | what |
|---|---|
| `network.net` | the network as a lava-dl netx HDF5 file (Loihi 2's open load format) |
| `deploy.json` | input encoding, reset schedule, layer table, output, hashes (machine-readable) |
| `run.py` | runs the network: Loihi 2 with lava-loihi installed, else Lava's CPU `fixed_pt` models |
{sample_row}

## What it expects
Input: {feed} {steps_txt}.

{reset_txt}

Output: the {what} of group `{out['group']}` (netx layer {out['layer']}, {out['neurons']} neurons). An input at
step `t` can first change the output at step `t + {m['latency_steps']}`.

| netx layer | type | build group | shape |
|---|---|---|---|
{layers}
{sample_txt}
## Run it
Needs Python 3.8+, numpy, `lava-nc` 0.10 and `lava-dl` 0.6 (the versions whose netx reader this file was checked
against); on a Loihi 2 system also Intel's `lava-loihi`.

On a Loihi 2 system (e.g. an INRC host; set `PARTITION` if you use one), copy the whole folder and run

    python run.py --input x.npy --out y.npz

`run.py` uses `Loihi2HwCfg` when lava-loihi is importable (spikes to and from the chip through its embedded-I/O
adapters), otherwise `Loihi2SimCfg(select_tag="fixed_pt")` on the CPU; `--backend cpu` or `--backend loihi2`
forces one. `--record` also writes `spikes/<group>`, `u/<group>` and `v/<group>` of every layer (Lava `Monitor`s;
on the chip this depends on lava-loihi's probe support). `--steps T` sets the steps per sample.

`y.npz` has the layout of `snnc simulate`: `spikes` (batch, steps, {out['neurons']}) -- the output {what} --
`steps_run`, and with `--record` the per-layer arrays.

## Compare with the toolchain
Where the toolchain is installed, its reference simulator computes the same integers (every spike, `u`, `v`):

    snnc simulate BUILD --input x.npy -o ref.npz [--record]{steps_flag}
    python run.py --input x.npy --check ref.npz [--record]     # prints bit-exact: yes|no, exit status 1 on no
{compare_note}
With `--mode continuous` (several samples back to back) compare with `snnc simulate` on the samples joined in
time: one sample of `batch * steps` steps ({joined}).
"""
