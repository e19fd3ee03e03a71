"""The wire format of Gmail's batch endpoint (``POST /batch/gmail/v1``), both directions (G7).

A batch request is ``multipart/mixed``; each part is ``Content-Type: application/http`` with a
``Content-ID`` and one HTTP request line (``GET /gmail/v1/users/me/messages/ID?format=raw``).
The outer request's Authorization applies to every inner call. The answer is ``multipart/mixed``
too, one ``application/http`` part per call holding a whole HTTP response, in ANY order, each
labelled ``Content-ID: <response-ID>`` for the request part ``<ID>``: match by id, never by
position. Inner calls succeed or fail one by one (a 200 next to a 429).

Pure encoding and decoding, no I/O. Inner responses come back as ``httpx.Response`` objects so
the caller maps their errors exactly as it maps direct calls.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

import httpx

MAX_CALLS = 50  # Gmail takes 100 per batch and advises at most 50

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def new_boundary() -> str:
    # Random, so that no message body can contain it by accident.
    return f"batch_{secrets.token_hex(16)}"


def encode_batch(targets: Sequence[str], boundary: str) -> bytes:
    """A batch of GETs of ``targets`` (path and query each); part ``i`` has Content-ID ``i``."""
    if not 0 < len(targets) <= MAX_CALLS:
        raise ValueError(f"a batch holds 1..{MAX_CALLS} calls, not {len(targets)}")
    parts = [
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{index}>\r\n\r\n"
        f"GET {target} HTTP/1.1\r\n\r\n"
        for index, target in enumerate(targets)
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def decode_batch(content_type: str, body: bytes) -> dict[int, httpx.Response]:
    """Inner responses by request index; parts that are unreadable or name no request we sent
    are left out (the caller treats a missing answer as a failed call)."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        return {}
    delimiter = b"\r\n--" + match.group(1).encode()
    answers: dict[int, httpx.Response] = {}
    # The first delimiter may open the body without a preceding line break.
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        _, _, part = chunk.partition(b"\r\n")  # the rest of the delimiter line
        head, _, inner = part.partition(b"\r\n\r\n")
        index = _content_index(head)
        response = _inner_response(inner)
        if index is not None and response is not None:
            answers[index] = response
    return answers


def _content_index(head: bytes) -> int | None:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-id":
            label = value.strip().strip(b"<>").decode("ascii", "replace")
            number = label.removeprefix("response-")
            return int(number) if number.isdigit() else None
    return None


def _inner_response(inner: bytes) -> httpx.Response | None:
    head, _, body = inner.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    words = status_line.split(" ", 2)
    if len(words) < 2 or not words[1].isdigit():
        return None
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    length = next((v for n, v in headers if n.lower() == "content-length"), None)
    if length is not None and length.isdigit():
        body = body[: int(length)]
    return httpx.Response(int(words[1]), headers=headers, content=body)
