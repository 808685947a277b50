"""The one HTTP layer of sicog's clients: a request that ends by its deadline, whatever the server does.

A socket timeout bounds each read, not the request: a server dripping a byte a second keeps a
request alive for ever under `timeout=3`. Here `timeout` is the deadline of the whole request
(connect, send, headers and body together):

- `post(url, body, headers, timeout)`: a blocking POST (http.client). A watchdog shuts the socket
  down when the deadline passes, so a blocked read returns at once; the call then raises
  `DeadlineExceeded`. Returns a `Response(status, headers, body)` for every status (the caller
  decides what a 4xx/5xx means). User and password in the URL (`http://u:p@host`) become a Basic
  Authorization header unless one is given.
- `within(awaitable, timeout)`: the same deadline for an asyncio call (the OpenAI SDK's own
  timeout is per read, like a socket's).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Mapping


class DeadlineExceeded(TimeoutError):
    """No complete answer within the request's deadline."""


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _target(url: str) -> tuple[type[http.client.HTTPConnection], str, int | None, str, str | None]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    auth = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return cls, parts.hostname, parts.port, path, auth


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
    """POST `body` to `url`; the whole request ends within `timeout` seconds (see the module docstring)."""
    cls, host, port, path, auth = _target(url)
    headers = dict(headers)
    if auth and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = auth
    conn = cls(host, port, timeout=timeout)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if expired.is_set():  # a body cut short by the watchdog (no Content-Length to notice it)
            raise DeadlineExceeded(f"no complete answer from {url} within {timeout:g} s")
        return Response(resp.status, resp.headers, data)
    except (OSError, http.client.HTTPException) as e:
        if expired.is_set() or isinstance(e, TimeoutError):
            raise DeadlineExceeded(f"no complete answer from {url} within {timeout:g} s") from None
        raise
    finally:
        watchdog.cancel()
        conn.close()


async def within(awaitable: Awaitable[Any], timeout: float) -> Any:
    """`await awaitable`, or DeadlineExceeded after `timeout` seconds (the call is cancelled)."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise DeadlineExceeded(f"no complete answer within {timeout:g} s") from None
