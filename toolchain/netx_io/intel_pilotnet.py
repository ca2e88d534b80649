"""Intel's Loihi 2 compiler on PilotNet-LIF, as data, and our partitioner's figures beside it.

Source: the per-core table that Intel's closed ``lava-loihi`` compiler printed for lava-dl's PilotNet-LIF in
lava-dl ``tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb`` (lava-dl, Intel, BSD-3-Clause, last commit
d825ac5), copied in ``../shared/data/lava-dl/README.md`` ("How Intel's Loihi 2 compiler placed it"). The notebook
prints one row per layer, output layer first; :data:`INTEL_PILOTNET_LIF` holds them in execution order (input
first). ``layer_shape`` is not in Intel's table: it is the layer's (W, H, C) grid (or neuron count) in
``pilotnet_lif/network.net`` and serves to find the layer among a Program's neuron groups. Intel's columns:
input axons (AxonIn), neurons, synapses (SynMem units), AxonMap and AxonMem entries per core, and cores.

:func:`compare_with_intel` lines up a partitioned PilotNet Program (``toolchain.passes.partition.partition``,
which computes both of its modes) with that table; :func:`format_intel_comparison` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..program import Program

__all__ = ["IntelRow", "INTEL_PILOTNET_LIF", "INTEL_TOTAL_CORES", "SOURCE", "match_groups", "compare_with_intel",
           "format_intel_comparison"]

SOURCE = ("lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb (Intel's Loihi 2 compiler, per-core "
          "table), as copied in shared/data/lava-dl/README.md")


@dataclass(frozen=True)
class IntelRow:
    """One row of Intel's table (figures per core, as printed), plus the layer's shape in the netx file."""

    layer: str
    layer_shape: Tuple[int, ...]
    core_shape: Optional[Tuple[int, ...]]  # Intel's per-core grid (W, H, C) for conv and input rows
    axon_in: int
    neurons: int
    synapses: int
    axon_map: int
    axon_mem: int
    cores: int


#: Intel's rows in execution order (the notebook prints them output layer first)
INTEL_PILOTNET_LIF: Tuple[IntelRow, ...] = (
    IntelRow("input", (200, 66, 3), (16, 66, 3), 1, 3168, 0, 1015, 731, 13),
    IntelRow("conv 24", (99, 32, 24), (4, 32, 24), 2, 3072, 81, 253, 93, 25),
    IntelRow("conv 36", (49, 15, 36), (4, 15, 36), 2, 2160, 864, 113, 32, 13),
    IntelRow("conv 48", (24, 7, 48), (8, 7, 48), 2, 2688, 1620, 112, 46, 3),
    IntelRow("conv 64", (22, 4, 64), (8, 4, 64), 1, 2048, 2160, 29, 9, 3),
    IntelRow("conv 64", (20, 2, 64), (16, 2, 64), 1, 2048, 2880, 1280, 0, 2),
    IntelRow("dense 2560->100", (100,), None, 2560, 8, 7253, 8, 0, 12),
    IntelRow("dense 100->50", (50,), None, 100, 50, 1300, 50, 0, 1),
    IntelRow("dense 50->10", (10,), None, 50, 10, 150, 10, 0, 1),
    IntelRow("dense 10->1", (1,), None, 10, 1, 10, 1, 0, 1),
)
#: Intel's total (the table's last line)
INTEL_TOTAL_CORES = 74
assert sum(r.cores for r in INTEL_PILOTNET_LIF) == INTEL_TOTAL_CORES


def match_groups(program: Program) -> List[Tuple[IntelRow, str]]:
    """Each Intel row with the Program's neuron group of the same shape (in execution order). Raises
    ``ValueError`` when the Program is not PilotNet-LIF (a row without a group)."""
    free = list(program.groups)
    out = []
    for row in INTEL_PILOTNET_LIF:
        hit = next((g for g in free if tuple(program.groups[g].shape) == row.layer_shape), None)
        if hit is None:
            raise ValueError(f"no neuron group of shape {row.layer_shape} for Intel's '{row.layer}' row: the Program "
                             "is not lava-dl's PilotNet-LIF")
        free.remove(hit)
        out.append((row, hit))
    return out


def compare_with_intel(program: Program) -> Dict[str, object]:
    """Per layer: Intel's cores and per-core figures beside ours, for a Program partitioned with
    ``compare=True`` (both modes; the default of ``partition``).

    Returns ``{"rows": [...], "totals": {"intel", "intel_halving", "pack"}, "ratio_intel_halving",
    "ratio_pack", "source"}``; each row has ``layer, group, intel_cores, intel_halving_cores, pack_cores``
    (``pack`` chunks: layers may share cores, so they can sum to more than the packed total), Intel's
    ``intel_core_shape/intel_neurons/intel_synapses/intel_axon_in`` and our emulation's ``core_shape,
    neurons_per_core, synapse_words_per_core, input_axons_per_core`` (largest core of the layer).
    """
    rep = program.report or {}
    modes = rep.get("modes", {})
    if "intel_halving" not in modes or "pack" not in modes:
        raise ValueError("the Program needs both partition modes in its report: partition(program, target, "
                         "compare=True)")
    ih, pk = modes["intel_halving"], modes["pack"]
    rows = []
    for row, g in match_groups(program):
        lay = ih["layers"][g]
        rows.append({"layer": row.layer, "group": g, "intel_cores": row.cores,
                     "intel_halving_cores": int(ih["per_group"][g]), "pack_cores": int(pk["per_group"][g]),
                     "intel_core_shape": row.core_shape, "core_shape": lay.get("core_shape"),
                     "intel_neurons": row.neurons, "neurons_per_core": lay["max_neurons_per_core"],
                     "intel_synapses": row.synapses, "synapse_words_per_core": lay["max_synapse_words_per_core"],
                     "intel_axon_in": row.axon_in, "input_axons_per_core": lay["max_input_axons_per_core"]})
    totals = {"intel": INTEL_TOTAL_CORES, "intel_halving": int(ih["cores_used"]), "pack": int(pk["cores_used"])}
    return {"rows": rows, "totals": totals, "ratio_intel_halving": totals["intel_halving"] / INTEL_TOTAL_CORES,
            "ratio_pack": totals["pack"] / INTEL_TOTAL_CORES, "source": SOURCE}


def format_intel_comparison(program: Program) -> str:
    """:func:`compare_with_intel` as a text table: per layer, Intel's cores / per-core shape / neurons / synapses /
    input axons beside our emulation of its halving (``intel_halving``) and our packing (``pack``)."""
    cmp = compare_with_intel(program)

    def shape(s: Optional[Tuple[int, ...]]) -> str:
        return "x".join(str(v) for v in s) if s else "-"

    head = ("layer", "group", "Intel cores", "ours (halving)", "ours (pack)", "Intel core", "our core",
            "Intel neurons", "ours", "Intel syn", "our words", "Intel AxonIn", "our in axons")
    lines_ = [head]
    for r in cmp["rows"]:
        lines_.append((r["layer"], r["group"], str(r["intel_cores"]), str(r["intel_halving_cores"]),
                       str(r["pack_cores"]), shape(r["intel_core_shape"]), shape(r["core_shape"]),
                       str(r["intel_neurons"]), str(r["neurons_per_core"]), str(r["intel_synapses"]),
                       str(r["synapse_words_per_core"]), str(r["intel_axon_in"]), str(r["input_axons_per_core"])))
    t = cmp["totals"]
    lines_.append(("total", "", str(t["intel"]), str(t["intel_halving"]), f"{t['pack']} packed", "", "", "", "", "",
                   "", "", ""))
    from ..textutil import table_lines
    out = table_lines(lines_)
    out.insert(len(out) - 1, out[1])  # the rule again above the totals
    out.append(f"cores vs Intel: halving emulation {t['intel_halving']}/{t['intel']} = "
               f"{cmp['ratio_intel_halving']:.3f}; our packing {t['pack']}/{t['intel']} = {cmp['ratio_pack']:.3f} "
               "(layers share cores; per-layer pack figures are chunks)")
    out.append(f"Intel's figures per core (largest core of a layer for ours): {SOURCE}")
    return "\n".join(out)
