"""Writing and checking build folders safely (used by :mod:`toolchain._program_io`).

* :func:`build_lock` — an exclusive, non-blocking lock on a build folder (a ``.NAME.lock`` file next to it, removed
  on release): a second writer of the same folder gets one clear error instead of silently winning or losing.
* :func:`write_build` — writes ``program.json`` and ``arrays.npz``. A new folder is written as a temporary sibling
  and renamed into place; an existing build folder gets only *our* files replaced (each written to a temporary
  name in the folder and renamed over the old one, arrays first), so files a user keeps there survive. A folder
  that holds files but no build is refused. ``program.json`` records the arrays' SHA-256, so a write interrupted
  between the two renames is detected on load. The bytes depend only on the Program: the npz members carry a
  fixed date, wall-clock ``pass_seconds`` are not stored and host paths are reduced to file names. Folders and
  files follow the umask (as ``mkdir`` and ``open`` would create them).
* :func:`check_document` and :func:`check_loaded` — the checks :func:`toolchain._program_io.load_program` runs:
  every field of ``program.json`` has its type, every array it names exists with the shape it says, names it
  refers to exist, and the loaded Program meets its target's limits.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from .errors import ToolchainError

__all__ = ["build_lock", "write_build", "check_writable", "npz_bytes", "portable", "check_document", "check_loaded", "VOLATILE_METADATA",
           "BuildLockedError"]

#: metadata keys that differ between two identical compiles and are therefore not stored
VOLATILE_METADATA = ("pass_seconds",)
#: metadata keys holding a host path; only the file name is stored
PATH_METADATA = ("file", "target_file")
_HELD: Dict[str, List[Any]] = {}  # lock path -> [fd, depth] for re-entrant use within one process
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class BuildLockedError(ToolchainError):
    """Another process is writing the same build folder."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def build_lock(out: "str | os.PathLike") -> Iterator[None]:
    """Hold the write lock of build folder ``out`` (re-entrant within a process); raise
    :class:`BuildLockedError` at once when another process holds it."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ToolchainError(f"the folder '{parent}' it would go in does not exist", file=str(out))
    lock = parent / f".{out.name}.lock"
    key = os.path.abspath(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ToolchainError(f"cannot create the lock file '{lock}': {exc.strerror}", file=str(out)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            except OSError:
                holder = "?"
            os.close(fd)
            raise BuildLockedError(f"is being written by another process (pid {holder}); wait for it to finish "
                                   f"or write to another folder", file=str(out)) from None
        try:  # the holder before us may have removed the file: lock the one that is there now
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (readable by ``np.load``) whose bytes depend only on the arrays (fixed member dates)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, v in arrays.items():
            info = zipfile.ZipInfo(f"{k}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(v), allow_pickle=False)
    return buf.getvalue()


def portable(doc: Dict[str, Any]) -> Dict[str, Any]:
    """The document without :data:`VOLATILE_METADATA` and with :data:`PATH_METADATA` reduced to file names."""
    md = dict(doc.get("metadata") or {})
    for k in VOLATILE_METADATA:
        md.pop(k, None)
    for k in PATH_METADATA:
        if isinstance(md.get(k), str):
            md[k] = os.path.basename(md[k])
    return {**doc, "metadata": md}


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a new file, mode 0666 less the umask) and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(folder: Path, name: str) -> Path:
    return folder / f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"


def write_build(out: "str | os.PathLike", doc: Dict[str, Any], arrays: Dict[str, np.ndarray],
                json_file: str, arrays_file: str) -> Path:
    """Write a build folder (see the module docstring); returns its path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ToolchainError("exists and is not a directory; refusing to overwrite it", file=str(out))
    blob = npz_bytes(arrays)
    doc = portable(doc)
    doc["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    text = json.dumps(doc, indent=1, allow_nan=False).encode("utf-8")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ToolchainError(f"the folder '{parent}' it would go in does not exist", file=str(out))
    with build_lock(out):
        if out.is_dir():
            if any(out.iterdir()) and not (out / json_file).is_file():
                raise ToolchainError("exists, is not empty and holds no program build; refusing to write into it",
                                     file=str(out))
            for name, data in ((arrays_file, blob), (json_file, text)):  # arrays first: json names their hash
                tmp = _tmp_name(out, name)
                try:
                    _write_file(tmp, data)
                    os.replace(tmp, out / name)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            return out
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        try:
            os.chmod(tmp_dir, 0o777 & ~_umask())  # mkdtemp makes 0700; a build folder follows the umask
            _write_file(tmp_dir / arrays_file, blob)
            _write_file(tmp_dir / json_file, text)
            os.rename(tmp_dir, out)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
    return out


def check_writable(folder: "str | os.PathLike", file: str, field: str) -> None:
    """Raise a ToolchainError naming ``file`` unless a file can be created in ``folder`` (tried for real: a
    temporary file is created and removed, so read-only mounts and /proc are caught even for root)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolchainError(f"the folder '{folder}' does not exist", file=file, field=field)
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".snnc-probe-"):
            pass
    except OSError as exc:
        raise ToolchainError(f"the folder '{folder}' is not writable ({exc.strerror or exc})", file=file,
                             field=field) from None


# ------------------------------------------------------------------------------------------------- loading
def _bad(msg: str, file: str, node: Optional[str] = None, field: Optional[str] = None) -> ToolchainError:
    return ToolchainError(msg, file=file, node=node, field=field)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shape_ok(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(s) and 0 <= s < 2 ** 31 for s in v)


_GROUP_FIELDS = {"name": str, "shape": "shape", "reset_mode": str, "spiking": bool, "source": str,
                 "reset_interval": int, "reset_offset": int}
_SYN_FIELDS = {"name": str, "src": str, "dst": str, "weight_exp": int, "num_weight_bits": int, "sign_mode": str,
               "delay": int, "recurrent": bool, "storage": str, "shape": "shape"}
_PORT_FIELDS = {"name": str, "shape": "shape", "num_message_bits": int, "kind": str, "target": str}
#: elements one build may declare in all (groups, weights): far above any target, far below a crash
MAX_ELEMENTS = 2 ** 31


def _check_fields(d: Any, spec: Dict[str, Any], file: str, what: str, required: tuple) -> str:
    if not isinstance(d, dict):
        raise _bad(f"each entry of '{what}' must be an object, got {type(d).__name__}", file, field=what)
    name = d.get("name") if isinstance(d.get("name"), str) else None
    for k in required:
        if k not in d:
            raise _bad(f"missing field '{k}' in '{what}'", file, node=name, field=k)
    for k, typ in spec.items():
        if k not in d:
            continue
        v = d[k]
        ok = _shape_ok(v) if typ == "shape" else _is_int(v) if typ is int else isinstance(v, typ)
        if not ok:
            want = "a list of non-negative integers" if typ == "shape" else {int: "an integer", bool: "true/false",
                                                                             str: "a string"}[typ]
            raise _bad(f"must be {want}, got {json.dumps(v)[:40]}", file, node=name, field=k)
    return name or ""


def check_document(doc: Dict[str, Any], arrays: Any, file: str, arrays_file: str, sha: Optional[str]) -> None:
    """Types of every ``program.json`` field this toolchain reads, the names it refers to, the arrays it names
    (present, of the declared shape) and the arrays file's hash; raises ToolchainError naming node and field."""
    for k, typ in (("groups", list), ("synapses", list), ("inputs", list), ("output", str), ("target", str)):
        if not isinstance(doc.get(k), typ):
            raise _bad(f"must be {'a list' if typ is list else 'a string'}", file, field=k)
    if not isinstance(doc.get("dt"), (int, float)) or isinstance(doc.get("dt"), bool) or not doc["dt"] > 0:
        raise _bad(f"must be a positive number of seconds, got {json.dumps(doc.get('dt'))[:40]}", file, field="dt")
    for k in ("report", "quant_report", "metadata"):
        if not isinstance(doc.get(k, {}), dict):
            raise _bad("must be an object", file, field=k)
    want = doc.get("arrays_sha256")  # written since format version 2 builds; a version-1 build has none
    if want is not None and sha is not None and want != sha and doc.get("version", 2) >= 2:
        raise _bad(f"'{arrays_file}' does not match this program.json (its SHA-256 differs: an interrupted write "
                   f"or an edited file); recompile", file, field="arrays_sha256")
    total = 0
    groups: Dict[str, int] = {}
    for i, g in enumerate(doc["groups"]):
        name = _check_fields(g, _GROUP_FIELDS, file, "groups", ("name", "shape", "reset_mode", "spiking", "source"))
        if name in groups:
            raise _bad("two groups have this name", file, node=name, field="name")
        n = int(np.prod(g["shape"], dtype=np.float64))
        total += n
        groups[name] = n
        for f in ("du", "dv", "vth", "bias_mant", "bias_exp"):
            key = f"g/{i}/{f}"
            if key not in arrays:
                raise _bad(f"array '{key}' is missing from {arrays_file}", file, node=name, field=f)
            a = arrays[key]
            if a.size not in (1, n):
                raise _bad(f"has {a.size} values for {n} neurons", file, node=name, field=f)
    ports: Dict[str, int] = {}
    for q in doc["inputs"]:
        name = _check_fields(q, _PORT_FIELDS, file, "inputs", ("name", "shape", "num_message_bits"))
        if name in groups or name in ports:
            raise _bad("an input port has the name of another port or group", file, node=name, field="name")
        ports[name] = int(np.prod(q["shape"], dtype=np.float64))
    if doc["output"] not in groups:
        raise _bad(f"names no group (groups: {', '.join(groups) or 'none'})", file, node=doc["output"],
                   field="output")
    for i, s in enumerate(doc["synapses"]):
        name = _check_fields(s, _SYN_FIELDS, file, "synapses", ("name", "src", "dst", "weight_exp",
                                                                "num_weight_bits", "sign_mode", "delay",
                                                                "recurrent", "storage", "shape"))
        if s["dst"] not in groups:
            raise _bad(f"target group '{s['dst']}' does not exist", file, node=name, field="dst")
        if s["src"] not in groups and s["src"] not in ports:
            raise _bad(f"source '{s['src']}' is neither a group nor an input port", file, node=name, field="src")
        shape = s["shape"]
        n_src = groups.get(s["src"], ports.get(s["src"]))
        if len(shape) != 2 or shape[0] != groups[s["dst"]] or shape[1] != n_src:
            raise _bad(f"weight shape {shape} does not join '{s['src']}' ({n_src}) to '{s['dst']}' "
                       f"({groups[s['dst']]})", file, node=name, field="shape")
        total += int(np.prod(shape, dtype=np.float64)) if s["storage"] == "dense" else 0
        if s["storage"] == "dense":
            key = f"s/{i}/values"
            if key in arrays and tuple(arrays[key].shape) != tuple(shape):
                raise _bad(f"array '{key}' has shape {tuple(arrays[key].shape)}, expected {tuple(shape)}", file,
                           node=name, field="weight")
    pl = doc.get("placement")
    if pl is not None:
        _check_placement(pl, arrays, groups, file, arrays_file)
    if total > MAX_ELEMENTS:
        raise _bad(f"declares {total:,} neurons and weights, more than any target holds ({MAX_ELEMENTS:,})", file,
                   field="shape")


_CORE_FIELDS = {k: int for k in ("core", "chip", "neurons", "synapse_bits", "state_bits", "input_axons",
                                  "output_axons", "profiles")}


def _check_placement(pl: Any, arrays: Any, groups: Dict[str, int], file: str, arrays_file: str) -> None:
    """The placement: every group placed by an integer core array of its size; a core list of integer fields
    numbered 0..n-1 whose group names exist."""
    if not isinstance(pl, dict) or not isinstance(pl.get("groups"), list) or not isinstance(pl.get("cores"), list):
        raise _bad("must be null or an object with the lists 'groups' and 'cores'", file, field="placement")
    n_cores = len(pl["cores"])
    for k, c in enumerate(pl["cores"]):
        _check_fields(c, {**_CORE_FIELDS, "groups": list}, file, "placement.cores", tuple(_CORE_FIELDS) + ("groups",))
        if c["core"] != k:
            raise _bad(f"core {k} is numbered {c['core']}", file, field="placement.cores.core")
        if any(not isinstance(g, str) or g not in groups for g in c["groups"]):
            raise _bad(f"core {k} names a group that does not exist: {c['groups']}", file,
                       field="placement.cores.groups")
    for i, name in enumerate(pl["groups"]):
        if not isinstance(name, str) or name not in groups:
            raise _bad(f"placement names a group that does not exist: {json.dumps(name)[:40]}", file,
                       field="placement.groups")
        key = f"p/{i}"
        a = arrays.get(key) if hasattr(arrays, "get") else None
        if a is None:
            raise _bad(f"array '{key}' is missing from {arrays_file}", file, node=name, field="placement")
        if not np.issubdtype(a.dtype, np.integer) or a.shape != (groups[name],):
            raise _bad(f"core array '{key}' must hold {groups[name]} integers, got {a.dtype} {a.shape}", file,
                       node=name, field="placement")
        if a.size and (a.min() < -1 or a.max() >= n_cores):
            raise _bad(f"core array '{key}' names cores outside [-1, {n_cores - 1}]", file, node=name,
                       field="placement")


def check_loaded(program: Any, file: str) -> None:
    """The loaded Program against its target's limits: for a build the compiler made (``metadata["pipeline"]``)
    the full stage-boundary checks it passed when written (quantised, and partitioned when placed); for other
    Programs the synapse fields the target bounds (``weight_exp``, ``num_weight_bits``, ``delay``)."""
    from .errors import QuantisationError
    from .targets import load_target
    try:
        spec = load_target(program.target)
    except ToolchainError:
        warnings.warn(f"{file}: target '{program.target}' is not known here; its limits were not checked")
        return
    try:
        if isinstance(program.metadata, dict) and program.metadata.get("pipeline"):
            from .passes.checks import verify_program
            verify_program(program, "partitioned" if program.placement is not None else "quantised", spec)
            return
        for s in program.synapses:
            if not spec.weight_exp_min <= s.weight_exp <= spec.weight_exp_max:
                raise QuantisationError(f"weight_exp {s.weight_exp} outside [{spec.weight_exp_min}, "
                                        f"{spec.weight_exp_max}]", node=s.name, field="weight_exp")
            if s.delay > spec.max_delay:
                raise QuantisationError(f"delay {s.delay} > {spec.max_delay}", node=s.name, field="delay")
    except ToolchainError as exc:
        raise ToolchainError(f"{exc.message} (limit of target '{spec.name}'); the build was edited or is damaged: "
                             f"recompile it", file=file, node=exc.node, field=exc.field) from None
