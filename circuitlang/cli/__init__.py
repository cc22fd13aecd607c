"""The `circ` command line: one module per family of commands.

- `check`: `circ check` (static checks, then the hypotheses on the model), `circ eval`;
- `present`: `circ fmt`, `circ render`, `circ diff`;
- `interop`: `circ import`, `circ export` (EAP-IG/MIB graph JSON);
- `discover`: `circ discover`;
- `track`: `circ track` (a file's checks across training checkpoints);
- `match`: `circ match` (which components of a model play a motif's or a circuit's roles);
- `paths`: `circ paths` (the paths between two nodes of a circuit);
- `serve`: `circ serve` (a local web page over a folder of .circ files);
- `catalog`: `circ models`, `circ stdlib`;
- `common`: the failure path, file helpers, shared options, the progress bar.

Exit codes everywhere: 0 clean, 1 diagnostics (or failed hypotheses, or differences for
`diff`, or a problem circuitlang explains), 2 usage or internal error. An internal error
prints one line; `--debug` adds the traceback. Heavy imports (torch, transformer_lens)
never happen at start-up: the static commands must start fast.
"""

from __future__ import annotations

import sys
import traceback

import click

from ..core.version import __version__
from .catalog import models, stdlib_command
from .check import check, eval_command
from .common import CircGroup
from .discover import discover
from .interop import export_command, import_command
from .match import match_command
from .paths import paths_command
from .present import diff, fmt_command, render
from .serve import serve_command
from .track import track_command


@click.group(cls=CircGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="circ")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def cli(debug: bool) -> None:
    """circuitlang: write transformer circuits as text, check them against a model, compose,
    diff and render them.

    A .circ file names a model, the components of a circuit (heads `L9.H6`, MLPs `L3.MLP`,
    `embed`, `logits`), the edges between them, and the hypotheses claimed about them.
    Run `circ COMMAND --help` for each command; docs/language.md is the language reference.
    """


for command in (check, eval_command, fmt_command, render, diff, paths_command, models, stdlib_command,
                import_command, export_command, discover, track_command, match_command, serve_command):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning internal errors into one line and exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="circ", standalone_mode=False)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(0)
    except Exception as err:  # noqa: BLE001 - the one place that turns crashes into exit 2
        if debug:
            traceback.print_exc()
        click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(2)
