"""The HTTP part of the tests' OpenAI-compatible servers: a threaded loopback server whose POSTs
go to `respond(path, body, auth)`, used as a context manager.

Subclasses decide the answers (tests/stages/_cod_server.py: an annotator with injectable faults;
tests/stages/_openai_server.py: the real tiny model behind HTTP).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serve on 127.0.0.1:<free port> in a background thread; `base_url` ends in /v1."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers
            disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK (~40 ms)

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code, data, headers = server.respond(self.path, body, self.headers.get("Authorization"))
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def respond(self, path: str, body: dict, auth: str | None) -> tuple[int, bytes | dict, dict | None]:
        """(status, body as bytes or a JSON-able dict, extra headers) for one POST."""
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
