"""Graph's JSON batching, ``POST /v1.0/$batch``: up to 20 requests in one JSON body.

The body is ``{"requests": [{"id", "method", "url", "headers"?, "body"?}, ...]}`` with ``url``
relative to the version (``/me/messages/ID/attachments``). The answer is always 200 with
``{"responses": [{"id", "status", "headers", "body"}, ...]}``: each inner request has its own
status, so one batch can hold a 200, a 404 and a 429 with its own ``Retry-After`` header.

The outer request must carry a valid token (else the whole batch is a 401, so a client's
refresh-on-401 works as for a single call). Each inner request runs through the ordinary
``/v1.0`` routes in process, with the outer Authorization header, so it is authenticated,
scoped, throttled and counted against the mailbox's 4 concurrent requests exactly like a
direct call. As Microsoft documents, Graph
dispatches up to four inner requests of a batch at once; a client that keeps other requests to
the same mailbox in flight meanwhile gets MailboxConcurrency 429s inside the batch. Responses
come back in completion order, not request order: clients must match them by ``id``.
``dependsOn`` (sequencing) is not emulated and is refused with 400.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.graph_errors import GraphError

BATCH_PATH = "/v1.0/$batch"
MAX_REQUESTS_PER_BATCH = 20
CONCURRENT_INNER_REQUESTS = 4
_INHERITED_HEADERS = ("authorization", "client-request-id")


def batch_route(authenticate: Callable[[Request], object]) -> Route:
    """The route; ``authenticate`` raises Graph's 401 for the outer request's token."""

    async def endpoint(request: Request) -> Response:
        try:
            authenticate(request)
            inner = _inner_requests(await _json_body(request))
        except GraphError as refusal:
            return refusal.to_response(request)
        return await _batch(request, inner)

    return Route(BATCH_PATH, endpoint, methods=["POST"])


async def _batch(request: Request, inner: list[dict[str, Any]]) -> Response:
    inherited = {k: v for k in _INHERITED_HEADERS if (v := request.headers.get(k)) is not None}
    slots = asyncio.Semaphore(CONCURRENT_INNER_REQUESTS)
    responses: list[dict[str, Any]] = []
    transport = httpx.ASGITransport(app=request.scope["app"])
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:

        async def run(call: dict[str, Any]) -> None:
            async with slots:
                responses.append(await _dispatch(client, call, inherited))

        await asyncio.gather(*(run(call) for call in inner))
    return JSONResponse({"responses": responses})


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise _bad_request("Invalid batch payload format.") from None


def _inner_requests(payload: Any) -> list[dict[str, Any]]:
    calls = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(calls, list) or not calls:
        raise _bad_request("Invalid batch payload format.")
    if len(calls) > MAX_REQUESTS_PER_BATCH:
        raise _bad_request(
            f"Number of included requests in the batch exceeds the maximum limit of "
            f"{MAX_REQUESTS_PER_BATCH}."
        )
    ids: set[str] = set()
    for call in calls:
        if not isinstance(call, dict) or not all(
            isinstance(call.get(key), str) and call[key] for key in ("id", "method", "url")
        ):
            raise _bad_request("Each request needs an id, a method and a url.")
        if call["id"] in ids:
            raise _bad_request("Request id values must be unique in a batch.")
        if "dependsOn" in call:
            raise _bad_request("dependsOn is not supported by this emulator.")
        if not isinstance(call.get("headers", {}), dict):
            raise _bad_request("Request headers must be an object.")
        ids.add(call["id"])
    return calls


async def _dispatch(
    client: httpx.AsyncClient, call: dict[str, Any], inherited: dict[str, str]
) -> dict[str, Any]:
    url = call["url"] if call["url"].startswith("/") else f"/{call['url']}"
    headers = {**inherited, **{str(k): str(v) for k, v in call.get("headers", {}).items()}}
    body = call.get("body")
    answer = await client.request(
        call["method"].upper(),
        f"/v1.0{url}",
        headers=headers,
        json=body if isinstance(body, dict | list) else None,
    )
    return {
        "id": call["id"],
        "status": answer.status_code,
        "headers": {
            name: value
            for name, value in answer.headers.items()
            if name.lower() not in ("content-length", "date", "server")
        },
        "body": _inner_body(answer),
    }


def _inner_body(answer: httpx.Response) -> Any:
    """JSON bodies as JSON; anything else base64-encoded, as Graph does."""
    if not answer.content:
        return None
    if "json" in answer.headers.get("content-type", ""):
        return answer.json()
    return base64.b64encode(answer.content).decode("ascii")


def _bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)
