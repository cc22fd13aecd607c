"""`circ serve FILE`: a local web page over FILE's folder (circuitlang/serve/ does the work)."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path

import click

from .common import UsageError, compile_or_fail

EXAMPLES = """
\b
Examples:
  circ serve stdlib/zoo/induction.circ                  # then open the printed address
  circ serve found.circ --root . --port 9000 --open
"""


@click.command("serve", epilog=EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--root", type=click.Path(path_type=Path, file_okay=False),
              help="The folder whose .circ files the page may open [default: FILE's folder]. Nothing outside "
                   "it is read.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Only this machine can connect to the default; another address lets "
                   "anyone who reaches it read the served .circ files and run the model.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--device", default="cpu", show_default=True, help="Where to run the model: cpu, cuda, mps.")
@click.option("--dtype", type=click.Choice(["float32", "float64", "bfloat16", "float16"]), default="float32",
              show_default=True)
@click.option("--quiet", is_flag=True, help="Do not log each request.")
def serve_command(file: Path, root: Path | None, host: str, port: int, open_browser: bool, device: str, dtype: str,
                  quiet: bool) -> None:
    """Show a file's circuits as interactive graphs on a local web page.

    Click an edge or a node for its minimality (delta f with its 95% interval), its score
    and its effect on each example; switch edges off and on and the circuit is measured
    again on the model (the batched engine, the numbers `circ eval --task` gives); for a
    ranked circuit (discovered on the page, or one whose edges all carry scores) choose
    its size with a slider over its measured faithfulness curve; see the diff of two
    circuits; export the edited circuit as canonical .circ. Everything the page shows is
    in its URL, so a link shares the view. Stop with Ctrl-C. docs/serve.md has pictures.
    """
    from ..serve.http import LOOPBACK, make_server
    from ..serve.workspace import Workspace

    compile_or_fail(file)
    folder = (root or file.parent).resolve()
    if not folder.is_dir():
        raise UsageError(f"--root {root} is not a folder")
    try:
        relative = file.resolve().relative_to(folder).as_posix()
    except ValueError:
        raise UsageError(f"{file} is not inside the served folder {folder}", "give a --root that holds it") from None
    workspace = Workspace(folder, device=device, dtype=dtype)
    try:
        server = make_server(workspace, relative, host, port, log=None if quiet else _log)
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}",
                         "choose another --port (0 picks a free one)") from None
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_address[1]}/?file={relative}"
    if host not in LOOPBACK:
        click.echo(f"warning: listening on {host}: anyone who can reach it can read the .circ files under "
                   f"{folder} and run the model", err=True)
    click.echo(f"serving {folder} at {url}  (Ctrl-C stops)", err=True)
    threading.Thread(target=_warm, args=(workspace, relative), daemon=True).start()
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()


def _warm(workspace, file: str) -> None:
    """Load the model and build the first task's data while the page loads (seconds)."""
    try:
        workspace.evaluator(file, None)
    except Exception:  # the page's first request reports the same problem properly
        pass


def _log(line: str) -> None:
    click.echo(line, err=True)
