"""``snnc compile FILE.nir --target loihi2 --dt 1e-3 [--reset zero|subtract] [--preset P] -o BUILD/ [--netx F.net]``.

Loads the NIR file (:func:`toolchain.nir_io.load`), compiles it (:func:`toolchain.compile.compile_graph`), writes
the Program to ``BUILD/`` (under the folder's lock, held from the start so that a second compile into the same
folder is refused; atomically: nothing is written when anything fails; an existing build folder keeps every file
that is not ours) and prints the resource report, the quantisation summary and the pass timings (which are not
stored: two compiles of the same input give byte-identical folders). Warnings go to stderr as ``warning: ...`` lines. ``--netx F.net`` also writes a
lava-dl netx file (:func:`toolchain.backends.netx.export_netx`); a network netx cannot hold is refused before
anything is written.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import click

from ..errors import ToolchainError
from ..textutil import table_lines
from .main import cli

__all__ = ["quant_summary", "check_build_folder"]


def quant_summary(program) -> str:
    """Per-layer quantisation errors and headroom as a small table."""
    q = program.quant_report
    rows = [("layer", "kind", "vth", "dv", "du", "w err max", "bias err", "headroom u/v bits", "latency")]
    for g, d in q.get("groups", {}).items():
        w_err = max([s["weight_rel_error_max"] for s in q.get("synapses", {}).values() if s["dst"] == g] or [0.0])
        hu, hv = d.get("headroom_u_bits"), d.get("headroom_v_bits")
        head = f"{'-' if hu is None else f'{hu:.1f}'}/{'inf' if hv is None else f'{hv:.1f}'}"
        bias_err = d.get("bias_rel_error")
        rows.append((g, str(d.get("kind", "-")), str(d.get("vth", "-")), str(d.get("dv", "-")), str(d.get("du", "-")),
                     f"{w_err:.2%}", "-" if bias_err is None else f"{bias_err:.2%}", head,
                     str(d.get("latency_steps", "-"))))
    return "\n".join(table_lines(rows))


@cli.command("compile")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--target", "-t", default="loihi2", show_default=True,
              help="Target name (hw_targets/NAME.toml) or path of a target .toml file.")
@click.option("--dt", type=float, default=None, help="Time step in seconds (default: the preset's or the file's).")
@click.option("--reset", type=click.Choice(["zero", "subtract"]), default=None,
              help="Reset mode of every spiking neuron (NIR does not store it).")
@click.option("--preset", default=None, help="Framework conventions of the file: snntorch, norse, sinabs, ...")
@click.option("--source-dt", type=float, default=None,
              help="Time step (s) the exporting framework simulated with, for presets that decode tau with it "
                   "(Norse); independent of --dt.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Build directory to write the Program to.")
@click.option("--vth-max", type=int, default=None, help="Largest threshold mantissa of a spiking layer.")
@click.option("--no-partition", is_flag=True, help="Stop after quantisation (no core placement).")
@click.option("--weight-split/--no-weight-split", default=None,
              help="Each synapse group gets a companion group carrying its rounding remainder (about 7 more bits of "
                   "weight precision where the exponent allows; twice the synapses). Default: auto, the split "
                   "(with --v-headroom 16 unless given) is kept only when it needs no more cores and at least "
                   "halves the worst weight error; the choice is printed.")
@click.option("--v-headroom", type=float, default=None,
              help="Thresholds below zero v may reach before saturating (default: the worst case, every inhibitory "
                   "input spiking every step, and 16 for the auto split build; a number trades guaranteed headroom "
                   "for finer integers).")
@click.option("--no-align-bias", is_flag=True,
              help="Let biases act from step 0 instead of hiding them until each layer's input arrives "
                   "(needed for --netx: netx files cannot set an initial voltage).")
@click.option("--netx", "netx_file", default=None, type=click.Path(dir_okay=False),
              help="Also write the Program as a lava-dl netx HDF5 file (toolchain.backends.netx); a NIR file is "
                   "then compiled to a representation netx can hold, and what changed is printed.")
@click.option("--reset-interval", type=int, default=None,
              help="netx input: lava-dl's Network(reset_interval=N), states reset every N steps.")
@click.option("--reset-offset", type=int, default=0, show_default=True,
              help="netx input: lava-dl's Network(reset_offset=...).")
@click.option("--sparse-fc", is_flag=True, help="netx input: dense layers as sparse synapses (Network(sparse_fc_layer=True)).")
def compile_cmd(file: str, target: str, dt: Optional[float], reset: Optional[str], preset: Optional[str],
                output: str, vth_max: Optional[int], no_partition: bool, no_align_bias: bool = False,
                netx_file: Optional[str] = None, reset_interval: Optional[int] = None, reset_offset: int = 0,
                sparse_fc: bool = False, source_dt: Optional[float] = None, weight_split: Optional[bool] = None,
                v_headroom: Optional[float] = None) -> None:
    """Compile a NIR file (or read a lava-dl netx .net file) for a Loihi-style target and write the Program to
    OUTPUT."""
    from ..build_io import build_lock
    from ..compile import compile_file, format_report
    from ..netx_io import is_netx_file
    opts = {}
    if vth_max is not None:
        opts["vth_max"] = vth_max
    if no_partition:
        opts["partition"] = False
    if no_align_bias:
        opts["align_bias"] = False
    if weight_split is not None:
        opts["weight_split"] = weight_split
    if v_headroom is not None:
        opts["v_headroom"] = v_headroom
    if source_dt is not None:
        opts["source_dt"] = source_dt
    if is_netx_file(file):
        opts.update(reset_interval=reset_interval, reset_offset=reset_offset, sparse_fc_layer=sparse_fc)
    elif reset_interval is not None or sparse_fc:
        raise ToolchainError("--reset-interval and --sparse-fc apply to netx (.net) files only", file=file,
                             field="reset_interval" if reset_interval is not None else "sparse_fc")
    elif netx_file is not None:
        opts["for_netx"] = True
    check_build_folder(output)
    if netx_file is not None:
        _check_writable_file(netx_file, "netx")
    with build_lock(output), warnings.catch_warnings(record=True) as caught:  # a second writer is refused
        warnings.simplefilter("always")
        try:
            prog = compile_file(file, target=target, dt=dt, reset=reset, preset=preset, **opts)
        except ToolchainError as exc:
            if exc.field == "dt" and dt is None and "no time step" in exc.message:
                raise ToolchainError("no time step: the file stores no dt; give --dt SECONDS (or --preset)",
                                     file=exc.file or file, field="dt") from None
            raise
        if netx_file is not None:  # refuse before anything is written
            from ..backends.netx import check_netx
            check_netx(prog, netx_file)
        path = prog.save(output)
        if netx_file is not None:
            from ..backends.netx import export_netx
            netx_path = export_netx(prog, netx_file)
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg not in seen:
            seen.add(msg)
            click.echo(f"warning: {msg}", err=True)
    click.echo(format_report(prog))
    click.echo("")
    if prog.metadata.get("precision", {}).get("note"):
        click.echo(prog.metadata["precision"]["note"])
    if "multichip" in prog.report:  # a system target: the chip map of the compile pipeline's chips step
        from ..passes.multichip import format_chip_report
        click.echo(format_chip_report(prog))
        click.echo("")
    if prog.metadata.get("source_format") == "netx":
        from ..netx_io import format_netx_layers
        click.echo(format_netx_layers(prog))
        if prog.placement is not None:
            click.echo("")
            click.echo(_cores_beside_intel(prog))
    else:
        click.echo(quant_summary(prog))
    for line in prog.metadata.get("netx_changes") or []:
        click.echo(f"netx: {line}")
    secs = prog.metadata.get("pass_seconds") or {}
    if secs:  # timings go to stdout, not into the build (builds are byte-identical for the same input)
        slow = sorted(secs.items(), key=lambda kv: -kv[1])[:3]
        click.echo(f"\ncompiled in {sum(secs.values()):.2f} s ("
                   + ", ".join(f"{k} {v:.2f} s" for k, v in slow) + ")")
    click.echo(f"\nwrote {path}")
    if netx_file is not None:
        click.echo(f"wrote {netx_path} (netx)")


def _cores_beside_intel(prog) -> str:
    """Cores per layer in both partition modes; for Intel's PilotNet-LIF also Intel's compiler's table beside."""
    from ..errors import ToolchainError as _TE
    from ..netx_io.intel_pilotnet import format_intel_comparison
    try:
        return format_intel_comparison(prog)
    except (_TE, ValueError, KeyError):  # not PilotNet: our two modes only
        from ..passes.partition import per_layer_cores
        modes = {m: per_layer_cores(prog, m) for m in ("pack", "intel_halving")}
        lines = ["cores per layer: group  pack  intel_halving"]
        for g in prog.groups:
            lines.append(f"  {g:10s} {modes['pack'].get(g, 0):5d} {modes['intel_halving'].get(g, 0):5d}")
        return "\n".join(lines)


def _check_writable_file(path: str, what: str) -> None:
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise ToolchainError("is a folder; give a file name", file=path, field=what)
    from ..build_io import check_writable
    check_writable(parent, path, what)


def check_build_folder(output: str) -> None:
    """Refuse, before compiling, a build folder we could not write or must not touch: a file, a folder in a
    missing or read-only parent, or a non-empty folder that holds no build (its files are the user's)."""
    from ..build_io import check_writable
    out = Path(output)
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and not out.is_dir():
        raise ToolchainError("exists and is not a folder; refusing to overwrite it", file=output, field="output")
    if not parent.is_dir():
        raise ToolchainError(f"the folder '{parent}' it would go in does not exist", file=output, field="output")
    if out.is_dir():
        if any(out.iterdir()) and not (out / "program.json").is_file():
            raise ToolchainError("exists, is not empty and holds no program build; refusing to write into it "
                                 "(give a new or empty folder)", file=output, field="output")
        check_writable(out, output, "output")
    else:
        check_writable(parent, output, "output")
