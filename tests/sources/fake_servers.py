"""Local fake AFLUX, Materials Project and static-file servers with injectable faults.

Each :class:`FakeServer` listens on 127.0.0.1 (port 0), answers from threads, records every
request, and shuts itself down after ``lifetime_s`` even if a test forgets to. Responses are
shaped like the real services' and built from the offline mirror (``../shared/data`` beside
the repository).

Faults, queued per URL substring with :meth:`FakeServer.inject` and used up in order:

- ``"500"``: HTTP 500;
- ``"sleep"``: wait ``sleep_s`` before answering (well beyond the client's timeout, so that a loaded machine
  can tell a timeout from a slow answer);
- ``"cut"``: announce the full ``Content-Length`` but send half the body, then close;
- ``"badjson"``: a complete 200 response whose body is the first half of the real one.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import emmet.core
import pandas as pd

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

#: (query string, request headers) -> (status, body)
Route = Callable[[str, dict[str, str]], tuple[int, bytes]]


@dataclass(frozen=True)
class Recorded:
    """One request the server saw."""

    path: str
    query: str
    headers: dict[str, str]

    @property
    def target(self) -> str:
        """``path?query`` as sent."""
        return f"{self.path}?{self.query}" if self.query else self.path


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 answering from ``routes`` (exact paths)."""

    def __init__(
        self, routes: dict[str, Route] | None = None, sleep_s: float = 3.0, lifetime_s: float = 60.0
    ):
        self.routes: dict[str, Route] = dict(routes or {})
        self.sleep_s = sleep_s
        self.requests: list[Recorded] = []
        self._faults: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._watchdog = threading.Timer(lifetime_s, self.stop)
        self._watchdog.daemon = True

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    def inject(self, match: str, *faults: str) -> None:
        """Answer the next requests whose ``path?query`` contains ``match`` with ``faults``, in order."""
        with self._lock:
            self._faults.setdefault(match, []).extend(faults)

    def requests_for(self, match: str) -> list[Recorded]:
        """The recorded requests whose ``path?query`` contains ``match``."""
        with self._lock:
            return [request for request in self.requests if match in request.target]

    def start(self) -> FakeServer:
        """Start serving (and the self-stop timer)."""
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        self._watchdog.cancel()
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_fault(self, target: str) -> str | None:
        with self._lock:
            for match, queue in self._faults.items():
                if match in target and queue:
                    return queue.pop(0)
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                path, _, query = self.path.partition("?")
                request = Recorded(path, query, {key.lower(): value for key, value in self.headers.items()})
                with server._lock:
                    server.requests.append(request)
                fault = server._next_fault(request.target)
                if fault == "500":
                    return self._send(500, b'{"detail": "injected failure"}')
                if fault == "sleep":
                    time.sleep(server.sleep_s)
                route = server.routes.get(path)
                status, body = route(query, request.headers) if route else (404, b"not found")
                if fault == "cut":
                    return self._send(status, body[: len(body) // 2], length=len(body))
                if fault == "badjson":
                    body = body[: len(body) // 2]
                self._send(status, body)

            def _send(self, status: int, body: bytes, length: int | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body) if length is None else length))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server API)
                pass

        return Handler


# --- AFLUX -----------------------------------------------------------------------------------

AFLUX_PATH = "/API/aflux/"
_PAGING = re.compile(r"\$paging\((\d+),(\d+)\)")


def aflow_mirror_labels(n: int) -> pd.DataFrame:
    """The first ``n`` rows of the mirror's AFLOW labels (with ``lattice_type``)."""
    return pd.read_csv(MIRROR / "aflow_agl" / "labels.csv").head(n)


def aflux_records(labels: pd.DataFrame, host: str) -> list[dict[str, object]]:
    """AFLUX-shaped records (``auid``, ``aurl``, ``compound``, the conductivity) served by ``host``."""
    return [
        {
            "auid": "aflow:" + hashlib.sha256(row.entry.encode()).hexdigest()[:16],
            "aurl": f"{host}:AFLOWDATA/ICSD_WEB/{row.lattice_type}/{row.entry}",
            "compound": row.compound,
            "agl_thermal_conductivity_300K": row.agl_thermal_conductivity_300K,
        }
        for row in labels.itertuples()
    ]


def aflow_server(labels: pd.DataFrame, malformed: set[str] = frozenset(), **kwargs: float) -> FakeServer:
    """A fake AFLOW: AFLUX paging over ``labels`` (in reverse entry order) and each entry's CIF.

    Entries in ``malformed`` serve a CIF that is not a CIF.
    """
    server = FakeServer(**kwargs)
    records = aflux_records(labels.iloc[::-1], server.host)

    def aflux(query: str, headers: dict[str, str]) -> tuple[int, bytes]:
        paging = _PAGING.search(query)
        needed = ("$catalog(ICSD)", "agl_thermal_conductivity_300K(*)", "format(json)")
        if not paging or not all(part in query for part in needed):
            return 400, b'["bad query"]'
        page, size = int(paging.group(1)), int(paging.group(2))
        return 200, json.dumps(records[(page - 1) * size : page * size]).encode()

    server.routes[AFLUX_PATH] = aflux
    for row in labels.itertuples():
        content = (
            b"this is not a CIF\n_cell_length_a\n"
            if row.entry in malformed
            else (MIRROR / "aflow_agl" / "cif" / f"{row.entry}.cif").read_bytes()
        )
        server.routes[f"/AFLOWDATA/ICSD_WEB/{row.lattice_type}/{row.entry}/{row.entry}.cif"] = _static(
            content
        )
    return server


# --- Materials Project -----------------------------------------------------------------------

SUMMARY_PATH = "/materials/summary/"
#: A 32-character key, the length mp-api insists on; it must never show up in logs or outputs.
API_KEY = "SeCrEtKeY0123456789abcdefghijkLM"


def mp_server(api_key: str, **kwargs: float) -> FakeServer:
    """A fake Materials Project API serving the mirror's structures to requests carrying ``api_key``.

    ``/heartbeat`` answers like the real one; ``/materials/summary/`` filters by ``material_ids``,
    projects ``_fields``, pages with ``_skip``/``_limit`` and answers ``{"data", "meta"}``.
    """

    def heartbeat(query: str, headers: dict[str, str]) -> tuple[int, bytes]:
        info = {
            "db_version": "2025.09.25",
            "access_controlled_batch_ids": [],
            "version": emmet.core.__version__,
        }
        return 200, json.dumps(info).encode()

    def summary(query: str, headers: dict[str, str]) -> tuple[int, bytes]:
        if headers.get("x-api-key") != api_key:
            return 401, b'{"detail": "invalid API key"}'
        params = {key: values[0] for key, values in parse_qs(query).items()}
        fields = params.get("_fields", "material_id,structure").split(",")
        docs = []
        for mp_id in params.get("material_ids", "").split(","):
            path = MIRROR / "mp" / "structures" / f"{mp_id}.json"
            if path.is_file():
                doc = {"material_id": mp_id, "structure": json.loads(path.read_text())}
                docs.append({key: doc[key] for key in fields if key in doc})
        skip, limit = int(params.get("_skip", 0)), int(params.get("_limit", 1000))
        body = {"data": docs[skip : skip + limit], "meta": {"total_doc": len(docs), "max_limit": 1000}}
        return 200, json.dumps(body).encode()

    return FakeServer({"/heartbeat": heartbeat, SUMMARY_PATH: summary}, **kwargs)


# --- static files ----------------------------------------------------------------------------


def static_server(files: dict[str, bytes], **kwargs: float) -> FakeServer:
    """A server answering each path of ``files`` with its bytes."""
    return FakeServer({path: _static(content) for path, content in files.items()}, **kwargs)


def _static(content: bytes) -> Route:
    return lambda query, headers: (200, content)
