"""Hardware targets as data: ``hw_targets/*.toml`` read into a frozen :class:`TargetSpec`.

A target file has the sections ``[target]`` (name, description), ``[chip]``, ``[core]``, ``[synapse]``,
``[neuron]`` and an optional ``[energy]``; every key is listed in :data:`SCHEMA` with its type and meaning, and the
shipped files (``loihi1.toml``, ``loihi2.toml``) give the source of each figure in a comment. A user adds a target
by writing such a file and passing its path (or putting it in ``hw_targets/``). Errors name the file and the key.

Synapse memory model (used by the partitioner, see :meth:`TargetSpec.synapse_bits`): the synapses of one input
axon on one core are stored in groups of at most ``block_max_synapses``; a group costs ``block_header_bits`` plus,
per synapse, ``weight_bits + delay_bits`` (when the group uses delays) ``+ sparse_index_bits`` (sparse encoding
only) and is rounded up to whole ``word_bits`` words; ``dense_synapse_bits``, when set, replaces ``weight_bits`` in
the dense format. Convolutions (:class:`~toolchain.ir.storage.Conv` storage) on a target with
``conv_encoding = "shared"`` are charged per core for the kernel taps the core's neurons use, not per output
position (:meth:`TargetSpec.conv_tap_bits`).

Graded messages (sigma-delta groups and graded input ports, ``Program.message_bits(src) > 0``): every synapse fed
by a graded source costs ``graded_synapse_extra_bits`` more (:meth:`TargetSpec.synapse_bits` and
:meth:`TargetSpec.conv_tap_bits` with ``graded=True``), every output axon of a graded source costs
:meth:`TargetSpec.axon_entries` entries, and each neuron's state is :meth:`TargetSpec.state_bits` of its kind,
charged against ``neuron_memory_bits`` per core (when set) and, on shared-memory targets, against the synapse
memory (:meth:`TargetSpec.shared_state_bits`). A target with ``graded_spike_bits = 0`` (Loihi 1) refuses graded
groups (:meth:`TargetSpec.check_graded`). Which of these figures are published and which are assumptions is said
in ``hw_targets/loihi2.toml``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import ToolchainError

try:  # Python 3.11+
    import tomllib as _toml  # type: ignore[import-not-found]
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

__all__ = ["TargetSpec", "TargetError", "load_target", "list_targets", "TARGET_DIR", "SCHEMA"]

TARGET_DIR = Path(__file__).resolve().parent.parent / "hw_targets"


class TargetError(ToolchainError):
    """A target file that cannot be read: names the file and the key."""


# section -> key -> (python type, required, check, meaning)
_POS = "positive"
_NONNEG = "nonneg"
_ANY = ""
SCHEMA: Dict[str, Dict[str, Tuple[type, bool, str, str]]] = {
    "target": {
        "name": (str, True, _ANY, "target name"),
        "description": (str, False, _ANY, "one-line description"),
        "base": (str, False, _ANY, "a shipped target (or .toml path) whose sections this file extends"),
    },
    "chip": {
        "cores_per_chip": (int, True, _POS, "neuro cores per chip"),
        "chips": (int, True, _POS, "chips in the system the compiler may use"),
    },
    "core": {
        "neurons_per_core": (int, True, _POS, "neurons (compartments) per core"),
        "synapse_memory_bits": (int, True, _POS, "synapse memory per core in bits"),
        "shared_memory": (bool, False, _ANY, "neuron state is charged to the synapse memory"),
        "neuron_state_bits": (int, False, _NONNEG, "bits of shared memory per neuron"),
        "neuron_memory_bits": (int, False, _NONNEG, "neuron state memory per core in bits, apart from the synapse "
                                                    "memory; neurons charged state_bits of their kind (0 = not "
                                                    "modelled)"),
        "input_axons_per_core": (int, True, _POS, "input (fan-in) axons per core"),
        "output_axons_per_core": (int, True, _POS, "output (fan-out) axons per core"),
        "max_fan_in": (int, True, _POS, "stored synapses into one neuron"),
        "max_fan_out_cores": (int, True, _POS, "destination cores of one neuron"),
        "neuron_profiles_per_core": (int, False, _NONNEG, "distinct neuron parameter sets per core (0 = no limit)"),
        "threshold_profiles_per_core": (int, False, _NONNEG, "distinct thresholds per core (0 = no limit)"),
    },
    "synapse": {
        "word_bits": (int, True, _POS, "synapse memory word"),
        "block_max_synapses": (int, True, _POS, "synapses per group of one axon"),
        "block_header_bits": (int, True, _NONNEG, "header bits per group"),
        "sparse_index_bits": (int, True, _NONNEG, "index bits per synapse in sparse encoding"),
        "weight_bits": (int, True, _POS, "weight mantissa bits (incl. sign)"),
        "weight_exp_min": (int, True, _ANY, "smallest weight exponent"),
        "weight_exp_max": (int, True, _ANY, "largest weight exponent"),
        "delay_bits": (int, True, _NONNEG, "per-synapse delay bits"),
        "max_delay": (int, True, _NONNEG, "largest extra synaptic delay in steps"),
        "graded_spike_bits": (int, True, _NONNEG, "graded spike payload bits (0 = binary spikes only)"),
        "dense_synapse_bits": (int, False, _NONNEG, "memory bits per synapse in the dense format (0 = weight_bits)"),
        "conv_encoding": (str, False, _ANY, "convolutions: 'shared' (one kernel copy per core) or 'per_synapse'"),
        "conv_tap_header_bits": (int, False, _NONNEG, "shared conv format: header bits per kernel-tap list"),
        "graded_synapse_extra_bits": (int, False, _NONNEG, "memory bits added to every synapse fed by a graded "
                                                           "(multi-bit payload) source"),
        "graded_axon_entry_bits": (int, False, _NONNEG, "payload bits one output-axon entry holds: a graded output "
                                                        "axon costs 1 + ceil(message bits / this) entries (0 = one)"),
    },
    "neuron": {
        "u_bits": (int, True, _POS, "current state bits (signed)"),
        "v_bits": (int, True, _POS, "voltage state bits (signed)"),
        "vth_bits": (int, True, _POS, "threshold mantissa bits (unsigned)"),
        "bias_mant_bits": (int, True, _POS, "bias mantissa bits (signed)"),
        "bias_exp_bits": (int, True, _POS, "bias exponent bits (unsigned)"),
        "decay_bits": (int, True, _POS, "decay constant bits (unsigned)"),
        "reset_modes": (list, True, _ANY, "supported reset modes: zero, subtract"),
        "lif_state_bits": (int, False, _NONNEG, "per-neuron state bits of a CUBA LIF neuron"),
        "sigma_delta_state_bits": (int, False, _NONNEG, "per-neuron state bits of a SigmaDelta neuron"),
        "delta_state_bits": (int, False, _NONNEG, "per-neuron state bits of a Delta neuron"),
        "sigma_state_bits": (int, False, _NONNEG, "per-neuron state bits of a Sigma neuron"),
    },
    "energy": {
        "synop_pj": (float, False, _NONNEG, "energy per synaptic operation (pJ)"),
        "synop_ns": (float, False, _NONNEG, "time per synaptic operation (ns)"),
        "neuron_update_pj": (float, False, _NONNEG, "energy per neuron update (pJ)"),
        "neuron_update_ns": (float, False, _NONNEG, "time per neuron update (ns)"),
        "spike_within_tile_pj": (float, False, _NONNEG, "energy per spike message within a tile (pJ)"),
        "spike_hop_pj": (float, False, _NONNEG, "energy per spike message hop between tiles (pJ)"),
    },
    "system": {
        "system_name": (str, False, _ANY, "the multi-chip system (board or rack) the chips form"),
        "interchip_link_cost": (float, False, _POS,
                                "cost of one spike message between chips, in within-chip messages (bandwidth ratio)"),
    },
}
_REQUIRED_SECTIONS = ("target", "chip", "core", "synapse", "neuron")


@dataclass(frozen=True)
class TargetSpec:
    """One hardware target: limits and bit widths (see :data:`SCHEMA` for the meaning of each field).

    Derived integer ranges (``vth_max``, ``bias_mant_min``/``max``, ...) are properties so that the file stays the
    single source of truth.
    """

    name: str
    cores_per_chip: int
    chips: int
    neurons_per_core: int
    synapse_memory_bits: int
    input_axons_per_core: int
    output_axons_per_core: int
    max_fan_in: int
    max_fan_out_cores: int
    word_bits: int
    block_max_synapses: int
    block_header_bits: int
    sparse_index_bits: int
    weight_bits: int
    weight_exp_min: int
    weight_exp_max: int
    delay_bits: int
    max_delay: int
    graded_spike_bits: int
    u_bits: int
    v_bits: int
    vth_bits: int
    bias_mant_bits: int
    bias_exp_bits: int
    decay_bits: int
    reset_modes: Tuple[str, ...]
    description: str = ""
    shared_memory: bool = False
    neuron_state_bits: int = 0
    neuron_profiles_per_core: int = 0
    threshold_profiles_per_core: int = 0
    synop_pj: Optional[float] = None
    synop_ns: Optional[float] = None
    neuron_update_pj: Optional[float] = None
    neuron_update_ns: Optional[float] = None
    spike_within_tile_pj: Optional[float] = None
    spike_hop_pj: Optional[float] = None
    dense_synapse_bits: int = 0
    conv_encoding: str = "per_synapse"
    conv_tap_header_bits: int = 0
    system_name: str = ""
    interchip_link_cost: Optional[float] = None
    neuron_memory_bits: int = 0
    graded_synapse_extra_bits: int = 0
    graded_axon_entry_bits: int = 0
    lif_state_bits: int = 0
    sigma_delta_state_bits: int = 0
    delta_state_bits: int = 0
    sigma_state_bits: int = 0
    source: str = ""

    # ------------------------------------------------------------------------------------------- ranges
    @property
    def total_cores(self) -> int:
        """Cores in the whole system (chips x cores per chip)."""
        return self.chips * self.cores_per_chip

    @property
    def vth_max(self) -> int:
        """Largest threshold mantissa (unsigned ``vth_bits``)."""
        return 2 ** self.vth_bits - 1

    @property
    def bias_mant_max(self) -> int:
        return 2 ** (self.bias_mant_bits - 1) - 1

    @property
    def bias_mant_min(self) -> int:
        return -(2 ** (self.bias_mant_bits - 1))

    @property
    def bias_exp_max(self) -> int:
        return 2 ** self.bias_exp_bits - 1

    @property
    def decay_max(self) -> int:
        """Largest decay constant (unsigned ``decay_bits``): 4095 for 12 bits."""
        return 2 ** self.decay_bits - 1

    @property
    def decay_unity(self) -> int:
        """The decay denominator, 2**decay_bits (4096)."""
        return 2 ** self.decay_bits

    @property
    def v_max(self) -> int:
        """Largest |v| before saturation: 2**(v_bits-1) - 1."""
        return 2 ** (self.v_bits - 1) - 1

    @property
    def u_max(self) -> int:
        """Largest |u| before wrap-around: 2**(u_bits-1) - 1."""
        return 2 ** (self.u_bits - 1) - 1

    def supports_reset(self, mode: str) -> bool:
        return mode in self.reset_modes

    # ------------------------------------------------------------------------------------ memory model
    def synapse_bits(self, counts: np.ndarray, *, sparse: bool, delay: bool = False,
                     graded: bool = False) -> np.ndarray:
        """Memory bits for input axons that carry ``counts`` synapses each on one core (vectorised, int64).

        Groups of at most ``block_max_synapses`` synapses, each ``block_header_bits`` plus the synapse bits
        (``graded``: plus ``graded_synapse_extra_bits``, the source sends graded payloads), rounded up to
        ``word_bits`` words; an axon with 0 synapses costs nothing.
        """
        counts = np.asarray(counts, dtype=np.int64)
        weight = self.weight_bits if sparse or not self.dense_synapse_bits else self.dense_synapse_bits
        per = weight + (self.delay_bits if delay else 0) + (self.sparse_index_bits if sparse else 0) + \
            (self.graded_synapse_extra_bits if graded else 0)
        bmax, w, h = self.block_max_synapses, self.word_bits, self.block_header_bits
        full, rem = np.divmod(counts, bmax)
        full_cost = -(-(bmax * per + h) // w) * w
        rem_cost = np.where(rem > 0, -(-(rem * per + h) // w) * w, 0)
        return full * full_cost + rem_cost

    @property
    def shared_conv(self) -> bool:
        """Convolutions are charged as one shared kernel copy per core (``conv_encoding = "shared"``)."""
        return self.conv_encoding == "shared"

    def conv_tap_bits(self, channels: np.ndarray, weight_bits: int, graded: bool = False) -> np.ndarray:
        """Memory bits of one kernel-tap list of the shared convolutional format (vectorised, int64): the weights
        of one (input channel, ky, kx) tap for ``channels`` output channels of one core, ``weight_bits`` each
        (the layer's compressed width, at most :attr:`weight_bits`; ``graded``: plus
        ``graded_synapse_extra_bits``), after a ``conv_tap_header_bits`` header, rounded up to whole ``word_bits``
        words; 0 channels cost nothing."""
        ch = np.asarray(channels, dtype=np.int64)
        b = min(int(weight_bits), self.weight_bits) + (self.graded_synapse_extra_bits if graded else 0)
        w = self.word_bits
        return np.where(ch > 0, -(-(self.conv_tap_header_bits + ch * b) // w) * w, 0)

    def axon_entries(self, message_bits: int) -> int:
        """Output-axon entries one (source neuron, destination core) route costs: 1 for binary spikes
        (``message_bits = 0``), ``1 + ceil(message_bits / graded_axon_entry_bits)`` for graded ones (1 when
        ``graded_axon_entry_bits`` is 0)."""
        if message_bits <= 0 or not self.graded_axon_entry_bits:
            return 1
        return 1 + -(-int(message_bits) // self.graded_axon_entry_bits)

    def state_bits(self, kind: str) -> int:
        """Per-neuron state bits of a neuron ``kind`` ("lif", "sigma_delta", "delta", "sigma"; 0 when the
        target does not give the figure)."""
        return {"lif": self.lif_state_bits, "sigma_delta": self.sigma_delta_state_bits,
                "delta": self.delta_state_bits, "sigma": self.sigma_state_bits}.get(kind, 0)

    def shared_state_bits(self, kind: str) -> int:
        """Bits of synapse memory one neuron of ``kind`` takes on a shared-memory target (0 otherwise):
        ``neuron_state_bits`` (the LIF figure) plus what the kind's state exceeds the LIF state by."""
        if not self.shared_memory:
            return 0
        return self.neuron_state_bits + max(0, self.state_bits(kind) - self.lif_state_bits)

    def check_graded(self, program: Any) -> None:
        """Refuse a Program whose groups or input ports send graded messages this target cannot carry (Loihi 1:
        binary spikes only, ``graded_spike_bits = 0``): :class:`TargetError` naming the group and the limit."""
        for name in list(program.groups) + [q.name for q in program.inputs]:
            bits = int(program.message_bits(name))
            if bits > self.graded_spike_bits:
                kind = program.groups[name].neuron if name in program.groups else "graded input port"
                what = "binary spikes only" if not self.graded_spike_bits else \
                    f"graded payloads of at most {self.graded_spike_bits} bits"
                raise TargetError(f"'{name}' ({kind}) sends graded messages of {bits} bits; target '{self.name}' "
                                  f"carries {what}; suggestion: compile sigma-delta networks for loihi2",
                                  node=name, field="graded_spike_bits")

    def summary(self) -> str:
        """A few lines naming the main limits."""
        return (f"{self.name}: {self.chips} chip(s) x {self.cores_per_chip} cores, {self.neurons_per_core} neurons, "
                f"{self.synapse_memory_bits // 8192} KiB synapse memory, {self.input_axons_per_core} in / "
                f"{self.output_axons_per_core} out axons per core; {self.weight_bits}-bit weights "
                f"(exp {self.weight_exp_min}..{self.weight_exp_max}), resets {', '.join(self.reset_modes)}")


def _check_value(path: str, section: str, key: str, value: Any) -> Any:
    typ, _, check, _ = SCHEMA[section][key]
    where = f"{section}.{key}"
    if typ is bool:
        if not isinstance(value, bool):
            raise TargetError(f"must be true or false, got {value!r}", file=path, field=where)
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TargetError(f"must be an integer, got {value!r}", file=path, field=where)
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TargetError(f"must be a number, got {value!r}", file=path, field=where)
        value = float(value)
    elif typ is str:
        if not isinstance(value, str) or (key == "name" and not value.strip()):
            raise TargetError(f"must be a non-empty string, got {value!r}", file=path, field=where)
    elif typ is list:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise TargetError(f"must be a non-empty list of strings, got {value!r}", file=path, field=where)
        bad = [v for v in value if v not in ("zero", "subtract")]
        if bad:
            raise TargetError(f"unknown reset mode(s) {bad}; known: zero, subtract", file=path, field=where)
        value = tuple(value)
    if key == "conv_encoding" and value not in ("shared", "per_synapse"):
        raise TargetError(f"must be 'shared' or 'per_synapse', got {value!r}", file=path, field=where)
    if check == _POS and value <= 0:
        raise TargetError(f"must be > 0, got {value}", file=path, field=where)
    if check == _NONNEG and value < 0:
        raise TargetError(f"must be >= 0, got {value}", file=path, field=where)
    return value


def parse_target(data: Dict[str, Any], path: str = "<dict>") -> TargetSpec:
    """Build a :class:`TargetSpec` from the parsed TOML ``data``; errors name ``path`` and the key."""
    if not isinstance(data, dict):
        raise TargetError("a target file must be a TOML table", file=path)
    for sec in data:
        if sec not in SCHEMA:
            raise TargetError(f"unknown section [{sec}]; sections are {sorted(SCHEMA)}", file=path, field=sec)
    kw: Dict[str, Any] = {}
    for sec, keys in SCHEMA.items():
        table = data.get(sec)
        if table is None:
            if sec in _REQUIRED_SECTIONS:
                raise TargetError(f"missing section [{sec}]", file=path, field=sec)
            continue
        if not isinstance(table, dict):
            raise TargetError(f"[{sec}] must be a table", file=path, field=sec)
        for key in table:
            if key not in keys:
                raise TargetError(f"unknown key; [{sec}] has {sorted(keys)}", file=path, field=f"{sec}.{key}")
        for key, (_, required, _, _) in keys.items():
            if key == "base":  # resolved by load_target before parsing
                continue
            if key not in table:
                if required:
                    raise TargetError("missing required key", file=path, field=f"{sec}.{key}")
                continue
            kw[key] = _check_value(path, sec, key, table[key])
    if kw["weight_exp_min"] > kw["weight_exp_max"]:
        raise TargetError(f"weight_exp_min {kw['weight_exp_min']} > weight_exp_max {kw['weight_exp_max']}",
                          file=path, field="synapse.weight_exp_min")
    if kw["max_delay"] > 2 ** kw["delay_bits"] - 1:
        raise TargetError(f"max_delay {kw['max_delay']} needs more than delay_bits={kw['delay_bits']} bits",
                          file=path, field="synapse.max_delay")
    if kw.get("shared_memory") and kw.get("neuron_state_bits", 0) * kw["neurons_per_core"] >= \
            kw["synapse_memory_bits"]:
        raise TargetError("neuron state of a full core would fill the whole shared memory", file=path,
                          field="core.neuron_state_bits")
    kw["source"] = path
    return TargetSpec(**kw)


def load_target(target: Union[str, os.PathLike, TargetSpec]) -> TargetSpec:
    """Read a target by name (``"loihi2"``: ``hw_targets/loihi2.toml``) or by the path of a TOML file.

    A :class:`TargetSpec` passes through unchanged. Raises :class:`TargetError` naming the file and key.
    """
    if isinstance(target, TargetSpec):
        return target
    text = os.fspath(target)
    path = Path(text)
    if not (text.endswith(".toml") or os.sep in text or path.exists()):
        path = TARGET_DIR / f"{text}.toml"
        if not path.exists():
            raise TargetError(f"unknown target {text!r}; known targets: {', '.join(list_targets())} "
                              f"(or give the path of a .toml file)", field="target")
    if not path.is_file():
        raise TargetError("no such target file", file=str(path))
    return parse_target(_read_with_base(path, ()), str(path))


def _read_with_base(path: Path, seen: Tuple[str, ...]) -> Dict[str, Any]:
    """The TOML tables of ``path``; with ``[target] base = NAME`` the base target's tables, section by section
    overridden by this file's keys (``base`` resolved like :func:`load_target`'s names, relative paths against
    this file's folder)."""
    try:
        with open(path, "rb") as fh:
            data = _toml.load(fh)
    except _toml.TOMLDecodeError as exc:
        raise TargetError(f"not valid TOML: {exc}", file=str(path)) from None
    except OSError as exc:
        raise TargetError(f"cannot read: {exc.strerror}", file=str(path)) from None
    tgt = data.get("target")
    base = tgt.get("base") if isinstance(tgt, dict) else None
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise TargetError(f"must be a non-empty string, got {base!r}", file=str(path), field="target.base")
    bpath = path.parent / base if (base.endswith(".toml") or os.sep in base) else TARGET_DIR / f"{base}.toml"
    if not bpath.is_file():
        raise TargetError(f"base target {base!r} not found (known targets: {', '.join(list_targets())})",
                          file=str(path), field="target.base")
    key = str(bpath.resolve())
    if key in seen:
        raise TargetError(f"base targets form a cycle through {base!r}", file=str(path), field="target.base")
    merged = _read_with_base(bpath, seen + (str(path.resolve()),))
    for sec, table in data.items():
        if isinstance(table, dict) and isinstance(merged.get(sec), dict):
            merged[sec] = {**merged[sec], **table}
        else:
            merged[sec] = table
    merged["target"].pop("base", None)
    return merged


def list_targets() -> List[str]:
    """Names of the targets shipped in ``hw_targets/``."""
    return sorted(p.stem for p in TARGET_DIR.glob("*.toml"))
