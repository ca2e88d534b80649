"""Write raw netx layers: a lava-dl *netx* HDF5 file (``.net``) from plain layer descriptions.

:func:`toolchain.backends.netx.export_netx` writes a netx file *from a Program*; this module writes one from
layer dicts given field by field, for hand-made networks (tests, benchmarks, examples) that must look exactly as
lava-dl's own exporters lay them out and as lava-dl 0.6.0's reader (``lava/lib/dl/netx/hdf5.py``) reads them:

* ``/layer/<i>`` for the i-th layer, in order;
* ``type``: a 1-element ``S10`` bytes array (``b"dense"``), as lava-dl stores it;
* every other key of the layer dict is a dataset of ``np.asarray(value)``, unchanged (``shape`` is given the way
  the file holds it, i.e. (C, H, W) for a grid; ``weight``, ``bias``, ``stride``, ``delay``, ...);
* ``neuron`` (a dict, or absent/None for no neuron group) becomes the group ``neuron``: its ``type`` an ``S10``
  bytes array (``CUBA``, ``LOIHI``, ``SDNN``), every other key a dataset (``iDecay``, ``vDecay``, ``vThMant``,
  ``refDelay``, ``sigma_output``, ...).

Nothing is added that the caller did not give and nothing is checked beyond what is needed to write the file;
what a layer means is the reader's business (:func:`toolchain.netx_io.load_netx`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

import numpy as np

from ..errors import ToolchainError

__all__ = ["write_netx_layers"]

_TYPE_BYTES = 10  # lava-dl's exporters store type names as fixed-length S10


def _type_bytes(value: Any, file: str, node: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ToolchainError(f"'type' must be a non-empty string, got {value!r}", file=file, node=node, field="type")
    raw = value.encode()
    if len(raw) > _TYPE_BYTES:
        raise ToolchainError(f"type name '{value}' is longer than netx's {_TYPE_BYTES} bytes (S10)", file=file,
                             node=node, field="type")
    return raw


def _check(layers: Sequence[Mapping[str, Any]], file: str) -> None:
    for i, lay in enumerate(layers):
        node = f"layer/{i}"
        if not isinstance(lay, Mapping):
            raise ToolchainError(f"a layer must be a dict of fields, got {type(lay).__name__}", file=file, node=node)
        if "type" not in lay:
            raise ToolchainError("missing the layer type", file=file, node=node, field="type")
        _type_bytes(lay["type"], file, node)
        neu = lay.get("neuron")
        if neu is not None:
            if not isinstance(neu, Mapping):
                raise ToolchainError(f"'neuron' must be a dict of fields or None, got {type(neu).__name__}",
                                     file=file, node=node, field="neuron")
            if "type" not in neu:
                raise ToolchainError("missing the neuron type", file=file, node=node + "/neuron", field="type")
            _type_bytes(neu["type"], file, node + "/neuron")


def write_netx_layers(path: Union[str, os.PathLike], layers: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``layers`` (dicts: ``type``, the layer's datasets, optional ``neuron`` dict) to ``path`` as a netx
    HDF5 file laid out as in the module docstring; returns the path.

    Raises :class:`~toolchain.errors.ToolchainError` naming the layer and field for a missing or too long
    ``type`` or a ``neuron`` that is not a dict, and for a directory that does not exist; the layers are checked
    before anything is written and the file is written to a temporary sibling and renamed into place, so an
    error never leaves a partial file.
    """
    import h5py

    path = Path(path)
    _check(layers, str(path))
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ToolchainError("is a directory; give a file name such as model.net", file=str(path), field="path")
    if not parent.is_dir():
        raise ToolchainError("the directory does not exist", file=str(parent), field="path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            top = f.create_group("layer")
            for i, lay in enumerate(layers):
                h = top.create_group(str(i))
                h.create_dataset("type", (1,), f"S{_TYPE_BYTES}", [lay["type"].encode()])
                for key, val in lay.items():
                    if key not in ("type", "neuron"):
                        h.create_dataset(key, data=np.asarray(val))
                neu: Dict[str, Any] = dict(lay.get("neuron") or {})
                if lay.get("neuron") is not None:
                    n = h.create_group("neuron")
                    for key, val in neu.items():
                        if key == "type":
                            n.create_dataset("type", (1,), f"S{_TYPE_BYTES}", [val.encode()])
                        else:
                            n.create_dataset(key, data=np.asarray(val))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
