"""lava-dl *netx* files (``.net``, HDF5) in: :func:`load_netx` turns one into an integer Program without
re-quantising it; :func:`compile_netx` also places it on a target's cores; :func:`write_netx_layers` writes one
from raw layer dicts (hand-made networks). Export of a Program lives in :mod:`toolchain.backends.netx`."""
from .load import NETX_SUFFIXES, NetxImportError, format_netx_layers, is_netx_file, load_netx, netx_inspect_text
from .compile import compile_netx
from .write import write_netx_layers

__all__ = ["load_netx", "compile_netx", "is_netx_file", "NetxImportError", "NETX_SUFFIXES", "format_netx_layers",
           "netx_inspect_text", "write_netx_layers"]
