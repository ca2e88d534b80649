"""``snnc``: entry point. Each subcommand lives in its own module and registers itself on :data:`cli`.

Errors on bad input (:class:`~toolchain.errors.ToolchainError`, missing files) end in one line on stderr and a
non-zero exit status; ``snnc --debug ...`` shows the traceback instead.
"""
from __future__ import annotations

import importlib
import sys
from typing import List, Optional

import click

from ..errors import ToolchainError

# Modules that define subcommands; each calls ``@cli.command()`` on import.
_COMMAND_MODULES: List[str] = [
    "toolchain.cli.inspect",
    "toolchain.cli.compile",
    "toolchain.cli.report",
    "toolchain.cli.demo",
    "toolchain.cli.simulate",
    "toolchain.cli.fidelity",
    "toolchain.cli.deploy",
    "toolchain.cli.train",
    "toolchain.cli.sweep",
    "toolchain.cli.chips",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """snnc — compile spiking neural networks (NIR) for Loihi-style targets, simulate and verify them."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _load_commands() -> None:
    for mod in _COMMAND_MODULES:
        importlib.import_module(mod)


def _os_message(exc: OSError) -> str:
    """``Permission denied: 'out/x.npz'`` style text of an OSError (with both names of a failed rename)."""
    what = exc.strerror or type(exc).__name__
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n]
    return f"{what}: " + " -> ".join(f"'{n}'" for n in names) if names else f"{what}: {exc}"


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 success, 1 bad input, 2 usage error).

    ``--debug`` may stand anywhere on the line (it is moved in front of the subcommand)."""
    _load_commands()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = ["--debug"] + [a for a in args if a != "--debug"]
    try:
        cli.main(args=args, prog_name="snnc", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted (interrupted)", err=True)
        return 1
    except SystemExit as exc:  # commands that exit with a status (e.g. verify on a mismatch)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except (ToolchainError, OSError, MemoryError) as exc:
        if debug:
            raise
        if isinstance(exc, ToolchainError):
            msg = str(exc)
        elif isinstance(exc, MemoryError):
            msg = ("out of memory (the input needs more than this process may allocate; see the size limits in "
                   "toolchain.limits, or raise the memory limit)")
        else:
            msg = _os_message(exc)
        click.echo(f"error: {msg}", err=True)
        return 1
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
