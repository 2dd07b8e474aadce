"""Cost of auditing outbound HTTP calls: plain clients versus audited ones.

Run:  python benchmarks/bench_outbound.py [--reps 7] [--calls 300]

Each worker starts a keep-alive HTTP server on 127.0.0.1 in a thread and times
calls through ``requests`` and ``httpx``. Variant ``off`` uses a plain
``requests.Session`` / ``httpx.Client``; variant ``on`` uses ``HTTPClient`` /
``AuditTransport`` with a real file handler (``AuditFormatter``) on
``audit.request`` at level API, so each call builds, redacts, formats and
writes one line. The absolute difference per call is the figure that matters;
the ratio depends on how fast the local server answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    machine_description,
    markdown_table,
    per_op,
    repeated,
    run_interleaved,
    summarize,
)

ROUNDS = 3
BODY = json.dumps({"id": 7, "status": "ok", "items": list(range(20)), "token": "x"}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, delayed ACKs dominate.
    disable_nagle_algorithm = True

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = _reply
    do_POST = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


def worker(variant: str, calls: int) -> None:
    import logging

    import httpx
    import requests

    from activity_audit.formatters import AuditFormatter
    from activity_audit.httpx_client import AuditTransport
    from activity_audit.levels import API
    from activity_audit.protocols import HTTPClient
    from activity_audit.schema import REQUEST_LOGGER

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/patients?page=2&api_key=secret"

    with tempfile.TemporaryDirectory() as tmp:
        logger = logging.getLogger(REQUEST_LOGGER)
        logger.propagate = False
        if variant == "on":
            handler = logging.FileHandler(Path(tmp) / "api.log")
            handler.setLevel(API)
            handler.setFormatter(AuditFormatter())
            logger.addHandler(handler)
            logger.setLevel(API)
            session: requests.Session = HTTPClient("bench")
            hclient = httpx.Client(transport=AuditTransport("bench"))
        else:
            session = requests.Session()
            hclient = httpx.Client()
        payload = {"name": "Ada", "password": "pw", "notes": "x" * 200}

        def requests_get() -> None:
            session.get(url, headers={"Authorization": "Bearer t"}, timeout=5).json()

        def requests_post() -> None:
            session.post(url, json=payload, timeout=5).json()

        def httpx_get() -> None:
            hclient.get(url, headers={"Authorization": "Bearer t"}, timeout=5).json()

        for fn in (requests_get, requests_post, httpx_get):  # warm up connections
            fn()
        results = {
            "requests GET (json)": per_op(repeated(requests_get, calls), ROUNDS),
            "requests POST json=": per_op(repeated(requests_post, calls), ROUNDS),
            "httpx GET (json)": per_op(repeated(httpx_get, calls), ROUNDS),
        }
        hclient.close()
        session.close()
        if variant == "on":
            lines = (Path(tmp) / "api.log").read_text().splitlines()
            expected = 3 + 3 * ROUNDS * calls
            if len(lines) != expected:
                raise SystemExit(f"expected {expected} audit lines, got {len(lines)}")
    server.shutdown()
    print(json.dumps(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--worker", choices=["on", "off"])
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.calls)
        return 0
    results = run_interleaved(
        lambda v: [sys.executable, __file__, "--worker", v, "--calls", str(args.calls)],
        variants=("off", "on"), reps=args.reps, cwd=str(ROOT),
    )
    title = f"Outbound HTTP calls, local keep-alive server ({args.calls} calls)"
    print(markdown_table(summarize(results, baseline="off"), title=title))
    print()
    print(machine_description())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
