"""The HTTP side of `circ serve`: Python's own `http.server`, a page of plain HTML and
JavaScript from `serve/static/`, and a small JSON API over a `Workspace`.

Why no web framework: the page talks to one local user, a few requests a second; the
standard library serves that, so `circ serve` adds no dependency and nothing to build
(docs/serve.md, "Why this stack"). The drawings are Graphviz SVG made on the server
(`present/render.py` with `ids=True`), so the page needs no graph-drawing library.

Safety: the server binds to 127.0.0.1 unless told otherwise; requests whose Host header
is not a loopback name are refused while it does (a web page elsewhere cannot reach it
by renaming itself, "DNS rebinding"); files are only read below the served folder
(`Workspace.path_of`), and only the page's own static files are served.

API (GET unless said; a view is file, circuit, task, k, off as in `workspace.View`):
  /api/files                      the served .circ files
  /api/file?file=F                its circuits (edges, nodes, whether ranked), tasks
  /api/graph?VIEW                 the circuit drawn (SVG), switched-off edges dotted
  /api/measure?VIEW               f, interval, minimality of every edge and node
  /api/effects?VIEW&edge=I|node=I per-example effect of one edge or node
  /api/curve?VIEW                 a ranked circuit's measured faithfulness curve
  /api/diff?file=F&a=A&b=B        the diff of two circuits (SVG and text)
  /api/export?VIEW                the circuit as canonical .circ (a download)
  POST /api/discover?file=F&task=T&method=M   rank the model's edges (a new circuit)
"""

from __future__ import annotations

import json
import math
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from ..core.errors import CircuitlangError
from ..discovery.methods import METHODS
from ..present.diff import diff_graphs
from ..present.render import MAX_DRAW_EDGES, RenderError, drawn, to_diff_dot, to_dot
from .workspace import ServeError, View, Workspace, export_name

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}


def view_of(query: dict[str, str]) -> View:
    """A View from the query string (the page's URL state uses the same names)."""
    try:
        k = int(query["k"]) if query.get("k") else None
        off = frozenset(int(i) for i in query.get("off", "").split(",") if i.strip())
    except ValueError:
        raise ServeError("k and off must be whole numbers (off: comma-separated edge indices)") from None
    if not query.get("circuit"):
        raise ServeError("no circuit named")
    return View(query.get("file", ""), query["circuit"], query.get("task") or None, k, off)


class Api:
    """The page's requests answered from one Workspace: each takes the query (a dict) and
    returns what the handler sends (JSON-able data, SVG bytes, or the export's text and name);
    a refusal is a ServeError carrying its HTTP status."""

    def __init__(self, workspace: Workspace, default_file: str):
        self.ws = workspace
        self.default_file = default_file

    def files(self, q: dict) -> dict:
        return {"root": str(self.ws.root), "files": self.ws.files(), "default": self.default_file,
                "methods": [m.name for m in sorted(METHODS.values(), key=lambda m: m.rank) if m.ranks_edges]}

    def file(self, q: dict) -> dict:
        file = q.get("file", "")
        compiled = self.ws.compiled(file)
        circuits = []
        for name in self.ws.circuit_names(file):
            ranked = self.ws.ranked(file, name)
            base = self.ws.base(View(file, name))
            circuits.append({
                "name": name, "doc": base.doc, "ranked": ranked is not None,
                "total": len(ranked.order) if ranked else len(base.edges),
                "how": ranked.how if ranked else None,
                "edges": [str(e) for e in base.sorted_edges()], "nodes": [str(n) for n in base.sorted_nodes()]})
        tasks = [{"name": t.name, "ablation": t.ablation, "metric": t.metric} for t in compiled.tasks.values()]
        return {"file": file, "model": compiled.model, "circuits": circuits, "tasks": tasks}

    def graph(self, q: dict) -> bytes:
        view = view_of(q)
        base = self.ws.base(view)
        edges = base.sorted_edges()
        if len(edges) > MAX_DRAW_EDGES:  # Graphviz would take minutes (present/render.py)
            raise ServeError(f"{view.circuit} has {len(edges)} edges, more than the {MAX_DRAW_EDGES:,} the page draws",
                             413, f"draw it at class level: circ render {view.file} --circuit {view.circuit} --collapse")
        shown = self.ws.circuit(view)  # refuses an index out of range, as measuring does
        dot = to_dot(base, groups=self.ws.groups(view.file, view.circuit), ids=True, muted=base.edges - shown.edges)
        return drawn(dot, "svg")

    def measure(self, q: dict) -> dict:
        return self.ws.measure(view_of(q))

    def effects(self, q: dict) -> dict:
        view = view_of(q)
        try:
            edge = int(q["edge"]) if q.get("edge") else None
            node = int(q["node"]) if q.get("node") else None
        except ValueError:
            raise ServeError("edge and node are indices (whole numbers)") from None
        return self.ws.effects(view, edge=edge, node=node)

    def curve(self, q: dict) -> dict:
        return self.ws.curve(view_of(q))

    def diff(self, q: dict) -> dict:
        file = q.get("file", "")
        if not q.get("a") or not q.get("b"):
            raise ServeError("name two circuits, a and b")
        a = self.ws.circuit(View(file, q["a"], k=_int(q.get("ka"))))
        b = self.ws.circuit(View(file, q["b"], k=_int(q.get("kb"))))
        d = diff_graphs(a, b, q["a"], q["b"])
        svg = drawn(to_diff_dot(a, b, labels=(q["a"], q["b"])), "svg").decode("utf-8")
        return {"svg": svg, "text": d.to_text(), "summary": d.summary(), "counts": d.counts()}

    def export(self, q: dict) -> tuple[str, str]:
        view = view_of(q)
        return self.ws.export(view), export_name(view) + ".circ"

    def discover(self, q: dict) -> dict:
        name = self.ws.discover(q.get("file", ""), q.get("task") or None, q.get("method", "eap"))
        return {"circuit": name}


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        raise ServeError(f"not a whole number: {text}") from None


def make_handler(api: Api, loopback_only: bool, log: Callable[[str], None] | None = None):
    """A request handler class bound to `api` (http.server wants a class)."""

    json_routes = {"/api/files": api.files, "/api/file": api.file, "/api/measure": api.measure,
                   "/api/effects": api.effects, "/api/curve": api.curve, "/api/diff": api.diff}

    class Handler(BaseHTTPRequestHandler):
        server_version = "circ-serve"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
            if log is not None:
                log(format % args)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def _answer(self, method: str) -> None:
            if loopback_only and self.headers.get("Host", "").rsplit(":", 1)[0] not in LOOPBACK:
                return self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8",
                                  b"circ serve answers only to localhost")
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            try:
                if method == "POST" and url.path == "/api/discover":
                    return self._json(api.discover(query))
                if method != "GET":
                    raise ServeError(f"{method} {url.path} is not something the page asks", 405)
                if url.path in json_routes:
                    return self._json(json_routes[url.path](query))
                if url.path == "/api/graph":
                    return self._send(HTTPStatus.OK, "image/svg+xml", api.graph(query))
                if url.path == "/api/export":
                    text, name = api.export(query)
                    return self._send(HTTPStatus.OK, "text/plain; charset=utf-8", text.encode("utf-8"),
                                      {"Content-Disposition": f'attachment; filename="{name}"'})
                return self._static(url.path)
            except ServeError as err:
                self._error(err.status, err)
            except RenderError as err:
                self._error(500, err)
            except CircuitlangError as err:
                self._error(422, err)
            except Exception as err:  # an internal error: one line to the page and the log
                self._error(500, CircuitlangError(f"internal error: {type(err).__name__}: {err}"))

        def _static(self, path: str) -> None:
            name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
            suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
            if "/" in name or suffix not in STATIC_TYPES:
                raise ServeError(f"no page {path}", 404)
            resource = resources.files(__package__).joinpath("static", name)
            if not resource.is_file():
                raise ServeError(f"no page {path}", 404)
            self._send(HTTPStatus.OK, STATIC_TYPES[suffix], resource.read_bytes())

        def _json(self, payload: object) -> None:
            body = json.dumps(_finite(payload), allow_nan=False).encode("utf-8")
            self._send(HTTPStatus.OK, "application/json", body)

        def _error(self, status: int, err: CircuitlangError) -> None:
            body = json.dumps({"error": str(err), "help": err.help}).encode("utf-8")
            self._send(status, "application/json", body)

        def _send(self, status: int, kind: str, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _finite(value: object) -> object:
    """JSON has no NaN: an undefined number (f of a circuit with no effect) goes as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class _ServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(workspace: Workspace, default_file: str, host: str = "127.0.0.1", port: int = 8765,
                log: Callable[[str], None] | None = None) -> ThreadingHTTPServer:
    """A server for the workspace (not yet serving: call serve_forever, or `start`)."""
    handler = make_handler(Api(workspace, default_file), host in LOOPBACK, log)
    server_class = _ServerV6 if ":" in host else ThreadingHTTPServer
    server = server_class((host.strip("[]"), port), handler)
    server.daemon_threads = True
    return server


def start(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a background thread (tests, notebooks); `server.shutdown()` stops it."""
    thread = threading.Thread(target=server.serve_forever, name="circ-serve", daemon=True)
    thread.start()
    return thread
