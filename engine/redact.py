"""Masking secrets before text reaches the database, a log or the screen.

Error messages and tracebacks can carry an API key (a provider echoing it back,
a URL with a token). Everything memtui records about a failure passes through
``redact``: it masks the values of environment variables whose names say they
are secrets, strings shaped like common API keys, and the password of any URL
(``postgresql://user:PASSWORD@host/db``, ``?password=...``) — a database error or
a job that quotes the store's URL must not write its password into a run row.
"""
from __future__ import annotations

import os
import re

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
KEY_SHAPES = re.compile(
    r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[abpr]-[A-Za-z0-9\-]{10,}|(?:Bearer|bearer)\s+[A-Za-z0-9._\-]{12,})"
)
MASK = "[redacted]"
# user:PASSWORD@ up to the last @ of the URL: a password may hold an unencoded / # ? or @ of its own
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)\S*@", re.I)
QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.I)


def secret_values() -> list[str]:
    """Values of secret-named environment variables, longest first (so no prefix is left behind)."""
    values = {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def redact(text: str | None) -> str | None:
    if not text:
        return text
    for value in secret_values():
        if value in text:
            text = text.replace(value, MASK)
    text = URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = QUERY_PASSWORD.sub(rf"\1{MASK}", text)
    return KEY_SHAPES.sub(MASK, text)
