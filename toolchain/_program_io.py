"""Program save/load: a build directory with ``program.json`` (structure, reports; versioned) and ``arrays.npz``
(every integer array, with its dtype). Written under a lock and atomically, replacing only our own files
(:mod:`toolchain.build_io`); loading checks every field's type, the arrays' hash and the target's limits."""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .errors import ToolchainError
from .ir.storage import Conv, Csr, Dense, Structured, WeightStorage
from .program import CoreUsage, InputPort, NeuronGroup, Placement, Program, SigmaDeltaParams, SynapseGroup

FORMAT_NAME = "snn-toolchain-program"
#: version 2 added the per-group ``v_init`` array; version 1 builds (no ``v_init``) load with ``v_init = 0``.
#: version 3 added conv storage, bias input ports and periodic reset (optional keys: a version-3 reader reads
#: version 1 and 2 builds unchanged).
#: version 4 added sigma-delta groups (optional ``sdn`` key per group, arrays ``g/<i>/sdn_vth``, ``g/<i>/sdn_bias``);
#: LIF-only Programs are still written as version 3, so older readers keep reading them.
#: version 5 added the per-group ``u_init`` array (``g/<i>/u_init``, written only when some group's is not 0:
#: other Programs keep their version, and an older reader refuses a build it would run with ``u = 0``).
FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
JSON_FILE = "program.json"
ARRAYS_FILE = "arrays.npz"


def jsonable(x: Any) -> Any:
    """Plain JSON data: numpy scalars/arrays to Python, tuples to lists, non-finite floats to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if x is None or isinstance(x, (str, int)):
        return x
    raise TypeError(f"cannot store {type(x).__name__} in program.json")


def _storage_arrays(w: WeightStorage, key: str, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    if isinstance(w, Dense):
        arrays[f"{key}/values"] = w.values
        return {"storage": "dense", "shape": list(w.shape)}
    if isinstance(w, Conv):  # the kernel and geometry; the CSR arrays are rebuilt from them on load
        arrays[f"{key}/kernel"] = w.kernel
        return {"storage": "conv", "shape": list(w.shape), "in_shape": list(w.in_shape),
                "out_shape": list(w.out_shape), "stride": list(w.stride), "padding": list(w.padding),
                "dilation": list(w.dilation), "groups": w.groups}
    if isinstance(w, Csr):
        arrays[f"{key}/indptr"] = w.indptr
        arrays[f"{key}/indices"] = w.indices
        arrays[f"{key}/data"] = w.data
        return {"storage": "csr", "shape": list(w.shape)}
    if isinstance(w, Structured):
        arrays[f"{key}/values"] = w.values
        arrays[f"{key}/row_mask"] = w.row_mask
        arrays[f"{key}/col_mask"] = w.col_mask
        arrays[f"{key}/block_mask"] = w.block_mask
        return {"storage": "structured", "shape": list(w.shape), "block_shape": list(w.block_shape)}
    raise TypeError(f"unknown storage {type(w).__name__}")


def _storage_from(desc: Dict[str, Any], key: str, arrays: Any) -> WeightStorage:
    kind = desc["storage"]
    if kind == "dense":
        return Dense(arrays[f"{key}/values"])
    if kind == "conv":
        return Conv(tuple(desc["in_shape"]), tuple(desc["out_shape"]), arrays[f"{key}/kernel"],
                    tuple(desc["stride"]), tuple(desc["padding"]), tuple(desc["dilation"]), int(desc["groups"]))
    if kind == "csr":
        return Csr(tuple(desc["shape"]), arrays[f"{key}/indptr"], arrays[f"{key}/indices"], arrays[f"{key}/data"])
    if kind == "structured":
        return Structured(arrays[f"{key}/values"], arrays[f"{key}/row_mask"], arrays[f"{key}/col_mask"],
                          tuple(desc["block_shape"]), arrays[f"{key}/block_mask"])
    raise ValueError(f"unknown storage kind {kind!r}")


def _encode(p: Program) -> tuple:
    arrays: Dict[str, np.ndarray] = {}
    groups = []
    for i, g in enumerate(p.groups.values()):
        for f in ("du", "dv", "vth", "bias_mant", "bias_exp", "v_init"):
            arrays[f"g/{i}/{f}"] = getattr(g, f)
        if np.any(g.u_init):
            arrays[f"g/{i}/u_init"] = g.u_init
        doc_g = {"name": g.name, "shape": list(g.shape), "reset_mode": g.reset_mode, "spiking": g.spiking,
                 "source": g.source}
        if g.reset_interval:
            doc_g.update(reset_interval=g.reset_interval, reset_offset=g.reset_offset)
        if g.sdn is not None:
            q = g.sdn
            arrays[f"g/{i}/sdn_vth"] = q.vth
            arrays[f"g/{i}/sdn_bias"] = q.bias
            doc_g["sdn"] = {"kind": q.kind, "spike_exp": q.spike_exp, "state_exp": q.state_exp,
                            "cum_error": q.cum_error, "act_mode": q.act_mode, "num_message_bits": q.num_message_bits}
        groups.append(doc_g)
    syns = []
    for i, s in enumerate(p.synapses):
        d = _storage_arrays(s.weight, f"s/{i}", arrays)
        d.update({"name": s.name, "src": s.src, "dst": s.dst, "weight_exp": s.weight_exp,
                  "num_weight_bits": s.num_weight_bits, "sign_mode": s.sign_mode, "delay": s.delay,
                  "recurrent": s.recurrent})
        syns.append(d)
    placement = None
    if p.placement is not None:
        pl: Placement = p.placement
        names = list(pl.core_of)
        for i, n in enumerate(names):
            arrays[f"p/{i}"] = pl.core_of[n]
        placement = {"groups": names, "cores": [
            {"core": c.core, "chip": c.chip, "neurons": c.neurons, "synapse_bits": c.synapse_bits,
             "state_bits": c.state_bits, "input_axons": c.input_axons, "output_axons": c.output_axons,
             "profiles": c.profiles, "groups": list(c.groups)} for c in pl.cores]}
    version = (5 if any(np.any(g.u_init) for g in p.groups.values())
               else 4 if any(g.sdn is not None for g in p.groups.values()) else 3)
    doc = {"format": FORMAT_NAME, "version": version, "target": p.target, "dt": p.dt, "output": p.output,
           "groups": groups, "synapses": syns,
           "inputs": [{"name": q.name, "shape": list(q.shape), "num_message_bits": q.num_message_bits,
                       **({"kind": q.kind, "target": q.target} if q.kind != "spikes" else {})}
                      for q in p.inputs],
           "placement": placement, "report": jsonable(p.report), "quant_report": jsonable(p.quant_report),
           "metadata": jsonable(p.metadata)}
    return doc, arrays


def save_program(p: Program, path: "str | os.PathLike") -> Path:
    """Write ``p`` to build folder ``path`` under its lock, atomically, replacing only our own files and with bytes
    that depend only on the Program (see :func:`toolchain.build_io.write_build`)."""
    from .build_io import write_build
    doc, arrays = _encode(p)  # may raise before anything touches the disk
    return write_build(path, doc, arrays, JSON_FILE, ARRAYS_FILE)


def load_program(path: "str | os.PathLike") -> Program:
    root = Path(path)
    jf, af = root / JSON_FILE, root / ARRAYS_FILE
    if not jf.is_file():
        raise ToolchainError(f"not a program build (no {JSON_FILE})", file=str(root))
    try:
        doc = json.loads(jf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolchainError(f"cannot read: {exc}", file=str(jf)) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ToolchainError(f"not a {FORMAT_NAME} file", file=str(jf), field="format")
    if doc.get("version") not in READABLE_VERSIONS:
        raise ToolchainError(f"format version {doc.get('version')!r} is not supported (this toolchain reads "
                             f"versions {', '.join(map(str, READABLE_VERSIONS))})", file=str(jf), field="version")
    if not af.is_file():
        raise ToolchainError("missing", file=str(af))
    try:
        blob = af.read_bytes()
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ToolchainError(f"cannot read (truncated or not an .npz archive): {exc}", file=str(af)) from None
    from .build_io import check_document, check_loaded
    try:
        check_document(doc, arrays, str(jf), ARRAYS_FILE, hashlib.sha256(blob).hexdigest())
    except ToolchainError as exc:
        raise ToolchainError(exc.message, file=str(root), node=exc.node, field=exc.field) from None
    program = _decode(doc, arrays, root)
    check_loaded(program, str(root))
    return program


def _sdn_from(d: Any, i: int, arrays: Dict[str, np.ndarray]) -> Any:
    """The group's :class:`SigmaDeltaParams` (version 4), or None."""
    if d is None:
        return None
    return SigmaDeltaParams(d["kind"], arrays[f"g/{i}/sdn_vth"], arrays[f"g/{i}/sdn_bias"], int(d["spike_exp"]),
                            int(d["state_exp"]), bool(d["cum_error"]), d["act_mode"], int(d["num_message_bits"]))


def _decode(doc: Dict[str, Any], arrays: Dict[str, np.ndarray], root: Path) -> Program:
    try:
        groups = [NeuronGroup(g["name"], tuple(g["shape"]), *(arrays[f"g/{i}/{f}"] for f in
                                                             ("du", "dv", "vth", "bias_mant", "bias_exp")),
                              reset_mode=g["reset_mode"], spiking=g["spiking"], source=g["source"],
                              v_init=arrays.get(f"g/{i}/v_init", 0), u_init=arrays.get(f"g/{i}/u_init", 0),
                              reset_interval=g.get("reset_interval", 0), reset_offset=g.get("reset_offset", 0),
                              sdn=_sdn_from(g.get("sdn"), i, arrays))
                  for i, g in enumerate(doc["groups"])]
        syns = [SynapseGroup(s["name"], s["src"], s["dst"], _storage_from(s, f"s/{i}", arrays),
                             weight_exp=s["weight_exp"], num_weight_bits=s["num_weight_bits"],
                             sign_mode=s["sign_mode"], delay=s["delay"], recurrent=s["recurrent"])
                for i, s in enumerate(doc["synapses"])]
        ports = [InputPort(q["name"], tuple(q["shape"]), q["num_message_bits"], kind=q.get("kind", "spikes"),
                           target=q.get("target", "")) for q in doc["inputs"]]
        placement = None
        if doc.get("placement") is not None:
            pl = doc["placement"]
            placement = Placement({n: arrays[f"p/{i}"] for i, n in enumerate(pl["groups"])},
                                  [CoreUsage(c["core"], c["chip"], c["neurons"], c["synapse_bits"], c["state_bits"],
                                             c["input_axons"], c["output_axons"], c["profiles"], tuple(c["groups"]))
                                   for c in pl["cores"]])
        return Program(groups, syns, ports, doc["output"], target=doc["target"], dt=doc["dt"], placement=placement,
                       report=doc["report"], quant_report=doc["quant_report"], metadata=doc["metadata"])
    except KeyError as exc:
        raise ToolchainError(f"incomplete build: missing {exc}", file=str(root)) from None
    except ToolchainError as exc:
        raise ToolchainError(exc.message, file=str(root), node=exc.node, field=exc.field) from None
    except (TypeError, ValueError, IndexError) as exc:  # a field of the right type but an impossible value
        raise ToolchainError(f"malformed build: {type(exc).__name__}: {exc}", file=str(root)) from None


def program_state(p: Program) -> tuple:
    """A comparable snapshot (JSON document + arrays with dtypes) of a Program, as a build would store it (no
    wall-clock timings, file names without their folders: :func:`toolchain.build_io.portable`)."""
    from .build_io import portable
    doc, arrays = _encode(p)
    doc = portable(doc)
    return (json.dumps(doc, sort_keys=True),
            tuple(sorted((k, str(v.dtype), v.shape, v.tobytes()) for k, v in arrays.items())))
