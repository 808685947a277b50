"""Secrets never reach a saved file, a log line or an error message.

- `is_secret_key(name)`: a config key or environment variable whose value is a secret — a name with
  a word ending in KEY, TOKEN, SECRET, PASSWORD or PASSWD (case-insensitive; `OPENAI_API_KEY`,
  `HF_TOKEN`, `apiKey`, `db_password`). Words, not substrings: `max_new_tokens` and
  `tokenizer_corpus` are settings, not secrets. A name whose last word is ENV, FILE, PATH, DIR or
  NAME refers to a secret without holding it (`api_key_env: OPENAI_API_KEY`) and is not masked.
- `mask_secrets(mapping)`: a copy whose secret-looking keys hold "***" (recursively; a bare
  `${VAR}` reference is kept, it holds no secret) and whose other strings are `redact`ed.
- `redact(text)`: every known secret value replaced by "***": the values of secret-looking
  environment variables, and the values given to `register_secret` (e.g. a key read from the
  variable an `api_key_env` setting names), and the password of every URL written
  `scheme://user:PASSWORD@host` (the user is kept). A registered value counts whatever its length
  (a configured key is a secret even when short); an environment variable's value only from 8
  characters on (a secret-looking name holding `1` or `yes` is a switch, not a key).
- `RedactingFilter`: a logging filter that redacts every record's message, arguments and traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 8
_SECRET_WORD_ENDINGS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD")
_REFERENCE_WORDS = ("ENV", "FILE", "PATH", "DIR", "NAME")
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")  # HF_TOKEN, apiKey, OpenAIKey
_ENV_REFERENCE_RE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")  # `${VAR}`: names a value, holds none

_registered: set[str] = set()


def _words(name: str) -> list[str]:
    return [w.upper() for w in _WORD_RE.findall(str(name))]


@functools.lru_cache(maxsize=4096)  # called for every environment variable on every redaction
def is_secret_key(name: str) -> bool:
    """True when a key / variable of this name holds a secret (see the module docstring)."""
    words = _words(name)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    return any(w.endswith(_SECRET_WORD_ENDINGS) for w in words)


_URL_CREDENTIALS_RE = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):(?P<password>[^\s/@]+)@")


def register_secret(value: str | None) -> None:
    """Treat `value` as a secret from now on (in this process), whatever its length; empty is ignored."""
    if isinstance(value, str) and value.strip():
        _registered.add(value)


def register_url_secret(url: str | None) -> None:
    """Treat the password of `url` (`scheme://user:PASSWORD@host/...`), and the Basic credentials made
    of it, as secrets, if it has one."""
    match = _URL_CREDENTIALS_RE.search(url) if isinstance(url, str) else None
    if match:
        import base64
        from urllib.parse import unquote

        user = unquote(match.group("head").rsplit("/", 1)[-1])
        password = unquote(match.group("password"))
        register_secret(match.group("password"))
        register_secret(password)
        # the Basic Authorization header an HTTP client makes of them, which a server may echo
        register_secret(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))


def known_secrets() -> list[str]:
    """Registered values plus those of secret-looking environment variables, longest first."""
    values = set(_registered)
    values.update(v for k, v in os.environ.items() if len(v) >= MIN_SECRET_LENGTH and is_secret_key(k))
    return sorted(values, key=len, reverse=True)


def redact(text: Any) -> str:
    """`text` (str() of it) with every known secret value replaced by "***"."""
    out = text if isinstance(text, str) else str(text)
    if "@" in out:
        out = _URL_CREDENTIALS_RE.sub(lambda m: f"{m.group('head')}:{MASK}@", out)
    for secret in known_secrets():
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_all(v) for v in value]
    reference = isinstance(value, str) and _ENV_REFERENCE_RE.match(value) is not None
    return value if value is None or value == "" or isinstance(value, bool) or reference else MASK


def mask_secrets(mapping: Any) -> Any:
    """A copy of `mapping` (dicts and lists, recursively) that can be saved: see the module docstring."""
    if isinstance(mapping, dict):
        return {k: (_mask_all(v) if is_secret_key(str(k)) else mask_secrets(v)) for k, v in mapping.items()}
    if isinstance(mapping, (list, tuple)):
        return [mask_secrets(v) for v in mapping]
    if isinstance(mapping, str):
        return redact(mapping)
    return mapping


class RedactingFilter(logging.Filter):
    """Redacts a record's message (with its arguments merged in), traceback and stack text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of `logger` (the root logger by default) once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
