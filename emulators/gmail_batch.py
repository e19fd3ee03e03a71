"""Gmail's batch endpoint, ``POST /batch/gmail/v1``: many API calls in one multipart/mixed request.

Each part is ``Content-Type: application/http`` holding one HTTP request (``GET /gmail/v1/users/
me/messages/ID?format=metadata HTTP/1.1``, headers, optional body). The outer request's headers,
Authorization in particular, apply to every inner call that does not set its own. At most 100
calls per batch. Each inner call runs through the ordinary Gmail routes in process, so it is
authenticated, charged to quota, counted and subject to injected faults exactly like a direct
call; a batch can therefore come back with some parts 200 and others 429.

As Google documents, responses come back in any order: each part carries ``Content-ID:
<response-ID>`` for the request part whose Content-ID was ``<ID>``. This emulator always reorders
them, so a client matching by position fails here rather than in production.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from emulators.gmail_errors import GmailError
from emulators.gmail_gateway import error_response
from emulators.gmail_stats import GmailStats

BATCH_PATH = "/batch/gmail/v1"
MAX_CALLS_PER_BATCH = 100

# Inner headers that describe the inner body and are therefore not inherited from outside.
_OWN_HEADERS = frozenset({"content-type", "content-length", "content-transfer-encoding"})
_RESPONSE_HEADERS = ("content-type", "retry-after", "www-authenticate")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class _InnerRequest:
    content_id: str
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def batch_route(gmail_app: ASGIApp, rng: random.Random, stats: GmailStats) -> Route:
    """The batch route, dispatching inner calls to ``gmail_app``."""

    async def endpoint(request: Request) -> Response:
        try:
            calls = _parse_batch(request.headers.get("content-type", ""), await request.body())
        except GmailError as error:
            stats.record("batch", "", error.code, 0)
            return error_response(error)
        inherited = {k: v for k, v in request.headers.items() if k.lower() not in _OWN_HEADERS}
        transport = httpx.ASGITransport(app=gmail_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gmail.internal"
        ) as client:
            answers = await asyncio.gather(*(_send(client, call, inherited) for call in calls))
        order = list(range(len(calls)))
        rng.shuffle(order)
        if order == sorted(order):
            order.reverse()
        boundary = f"batch_{rng.getrandbits(64):016x}"
        parts = [_response_part(calls[i].content_id, answers[i], boundary) for i in order]
        stats.record("batch", "", 200, 0)
        return Response(
            b"".join(parts) + f"--{boundary}--\r\n".encode(),
            media_type=f"multipart/mixed; boundary={boundary}",
        )

    return Route(BATCH_PATH, endpoint, methods=["POST"], name="batch")


def _parse_batch(content_type: str, body: bytes) -> list[_InnerRequest]:
    if not content_type.lower().startswith("multipart/mixed") or "boundary=" not in content_type:
        raise GmailError.invalid("Batch requests must be multipart/mixed with a boundary")
    envelope = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = BytesParser(policy=policy.compat32).parsebytes(envelope)
    parts = message.get_payload() if message.is_multipart() else []
    if not isinstance(parts, list) or not parts:
        raise GmailError.invalid("Batch request contains no parts")
    if len(parts) > MAX_CALLS_PER_BATCH:
        raise GmailError.invalid(
            f"Too many requests in batch: {len(parts)} (at most {MAX_CALLS_PER_BATCH})"
        )
    calls = []
    for index, part in enumerate(parts, start=1):
        payload = part.get_payload(decode=True)
        content_id = str(part.get("Content-ID", str(index))).strip().strip("<>")
        calls.append(_parse_http(content_id, payload if isinstance(payload, bytes) else b""))
    return calls


def _parse_http(content_id: str, data: bytes) -> _InnerRequest:
    head, *rest = _HEAD_END.split(data.lstrip(b"\r\n"), maxsplit=1)
    body = rest[0] if rest else b""
    lines = head.decode("utf-8", "replace").splitlines()
    words = lines[0].split()
    if len(words) < 2:
        raise GmailError.invalid(f"Invalid inner request line in part {content_id}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip():
            headers[name.strip().lower()] = value.strip()
    # Inner requests name a path, sometimes a full URL; either way only path and query count.
    url = urlsplit(words[1])
    target = url.path + (f"?{url.query}" if url.query else "")
    return _InnerRequest(content_id, words[0].upper(), target, headers, body)


async def _send(
    client: httpx.AsyncClient, call: _InnerRequest, inherited: Mapping[str, str]
) -> httpx.Response:
    headers = {**{k.lower(): v for k, v in inherited.items()}, **call.headers}
    headers.pop("host", None)
    return await client.request(call.method, call.target, headers=headers, content=call.body)


def _response_part(content_id: str, answer: httpx.Response, boundary: str) -> bytes:
    status = HTTPStatus(answer.status_code)
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{n}: {answer.headers[n]}" for n in _RESPONSE_HEADERS if n in answer.headers]
    lines.append(f"Content-Length: {len(answer.content)}")
    inner = ("\r\n".join(lines) + "\r\n\r\n").encode() + answer.content
    head = (
        f"--{boundary}\r\nContent-Type: application/http\r\n"
        f"Content-ID: <response-{content_id}>\r\n\r\n"
    )
    return head.encode() + inner + b"\r\n"
