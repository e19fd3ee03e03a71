"""``/_emulator/...``: the Google emulator's test controls over HTTP, for other processes.

A demo or a worker-kill test runs the emulator in one process and drives it from another. Each
route maps onto one Python control of ``GoogleEmulator`` and its parts; JSON in, JSON out; no
authentication (the emulator listens on loopback only). Errors come in Gmail's error shape.

    POST   /_emulator/clients                      {"client_id", "client_secret", "redirect_uris"}
    POST   /_emulator/users                        {"email", "approve"?: true, "default"?: false}
    GET    /_emulator/users/{email}                -> {"emailAddress", "messagesTotal", ...}
    POST   /_emulator/users/{email}/messages       {"raw": base64url, "labelIds"?, "internalDate"?}
    POST   /_emulator/users/{email}/corpus         {"seed", "count"} -> {"ids": [...]}
    POST   /_emulator/users/{email}/messages/{id}/modify   {"addLabelIds"?, "removeLabelIds"?}
    POST   /_emulator/users/{email}/messages/{id}/trash
    DELETE /_emulator/users/{email}/messages/{id}
    POST   /_emulator/users/{email}/history/expire {"beforeHistoryId"?: int} (absent: all)
    POST   /_emulator/users/{email}/revoke         {"client_id"?} -> {"revoked": n}
    POST   /_emulator/tokens                       {"email", "client_id", "scopes"} -> tokens
    POST   /_emulator/tokens/expire                {"email"?} (absent: everyone's)
    POST   /_emulator/faults                       {"kind", "times"?, "delay"?, "method"?,
                                                    "user"?, "retryAfter"?}
    DELETE /_emulator/faults
    PUT    /_emulator/limits                       {"unitsPerMinute"?, "maxConcurrentRequests"?}
    POST   /_emulator/push/subscriptions           {"topicName", "pushEndpoint"}
    POST   /_emulator/push/drop                    {"count"?: 1} (lose the next notifications)
    GET    /_emulator/stats                        -> GoogleEmulator.snapshot()
    DELETE /_emulator/stats
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.gmail_errors import GmailError
from emulators.gmail_gateway import error_response
from emulators.gmail_records import StoredMessage
from emulators.gmail_render import b64url_decode, profile_json, short_message_json
from emulators.gmail_store import Mailbox

if TYPE_CHECKING:
    from emulators.gmail_emulator import GoogleEmulator

PREFIX = "/_emulator"
Body = dict[str, Any]
Control = Callable[[Request, Body], Awaitable[Any]]


def control_routes(emulator: GoogleEmulator) -> list[Route]:
    def route(path: str, method: str, control: Control) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                result = await control(request, await _body(request))
            except GmailError as error:
                return error_response(error)
            except (KeyError, ValueError, TypeError) as exc:
                return error_response(GmailError.invalid(f"Bad control request: {exc!r}"))
            return JSONResponse(result if result is not None else {})

        return Route(PREFIX + path, endpoint, methods=[method])

    def mailbox(request: Request) -> Mailbox:
        return emulator.mailbox(request.path_params["email"])

    async def add_client(request: Request, body: Body) -> Any:
        client = emulator.register_client(
            body["client_id"], body["client_secret"], body["redirect_uris"]
        )
        return asdict(client)

    async def add_user(request: Request, body: Body) -> Any:
        emulator.add_user(
            body["email"], approve=body.get("approve", True), default=body.get("default", False)
        )
        return {"email": body["email"]}

    async def profile(request: Request, body: Body) -> Any:
        return profile_json(mailbox(request).profile())

    async def deliver(request: Request, body: Body) -> Any:
        labels = body.get("labelIds")
        kwargs: dict[str, Any] = {} if labels is None else {"label_ids": labels}
        raw = b64url_decode(body["raw"])
        return _short(
            mailbox(request).deliver(raw, internal_date=body.get("internalDate"), **kwargs)
        )

    async def corpus(request: Request, body: Body) -> Any:
        delivered = emulator.load_corpus(
            request.path_params["email"], seed=int(body["seed"]), count=int(body["count"])
        )
        return {"ids": [m.id for m in delivered]}

    async def modify(request: Request, body: Body) -> Any:
        return _short(
            mailbox(request).modify(
                request.path_params["id"],
                add=body.get("addLabelIds", []),
                remove=body.get("removeLabelIds", []),
            )
        )

    async def trash(request: Request, body: Body) -> Any:
        return _short(mailbox(request).trash(request.path_params["id"]))

    async def delete(request: Request, body: Body) -> Any:
        mailbox(request).delete(request.path_params["id"])

    async def expire_history(request: Request, body: Body) -> Any:
        mailbox(request).expire_history(body.get("beforeHistoryId"))

    async def revoke(request: Request, body: Body) -> Any:
        count = emulator.identity.revoke(request.path_params["email"], body.get("client_id"))
        return {"revoked": count}

    async def issue_tokens(request: Request, body: Body) -> Any:
        return asdict(
            emulator.identity.issue_tokens(body["email"], body["client_id"], body["scopes"])
        )

    async def expire_tokens(request: Request, body: Body) -> Any:
        emulator.identity.expire_access_tokens(body.get("email"))

    async def inject_fault(request: Request, body: Body) -> Any:
        emulator.faults.inject(
            body["kind"],
            times=int(body.get("times", 1)),
            delay=float(body.get("delay", 0.0)),
            method=body.get("method"),
            user=body.get("user"),
            retry_after=body.get("retryAfter"),
        )

    async def clear_faults(request: Request, body: Body) -> Any:
        emulator.faults.clear()

    async def limits(request: Request, body: Body) -> Any:
        if "unitsPerMinute" in body:
            emulator.quota.units_per_minute = int(body["unitsPerMinute"])
        if "maxConcurrentRequests" in body:
            emulator.gateway.max_concurrent_requests = body["maxConcurrentRequests"]
        return {
            "unitsPerMinute": emulator.quota.units_per_minute,
            "maxConcurrentRequests": emulator.gateway.max_concurrent_requests,
        }

    async def push_subscription(request: Request, body: Body) -> Any:
        emulator.push.subscribe(body["topicName"], body["pushEndpoint"])

    async def drop_push(request: Request, body: Body) -> Any:
        emulator.push.drop_next(int(body.get("count", 1)))

    async def stats(request: Request, body: Body) -> Any:
        return emulator.snapshot()

    async def reset_stats(request: Request, body: Body) -> Any:
        emulator.stats.reset()

    user = "/users/{email}"
    message = user + "/messages/{id}"
    return [
        route("/clients", "POST", add_client),
        route("/users", "POST", add_user),
        route(user, "GET", profile),
        route(user + "/messages", "POST", deliver),
        route(user + "/corpus", "POST", corpus),
        route(message + "/modify", "POST", modify),
        route(message + "/trash", "POST", trash),
        route(message, "DELETE", delete),
        route(user + "/history/expire", "POST", expire_history),
        route(user + "/revoke", "POST", revoke),
        route("/tokens", "POST", issue_tokens),
        route("/tokens/expire", "POST", expire_tokens),
        route("/faults", "POST", inject_fault),
        route("/faults", "DELETE", clear_faults),
        route("/limits", "PUT", limits),
        route("/push/subscriptions", "POST", push_subscription),
        route("/push/drop", "POST", drop_push),
        route("/stats", "GET", stats),
        route("/stats", "DELETE", reset_stats),
    ]


def _short(message: StoredMessage) -> dict[str, Any]:
    return {**short_message_json(message), "historyId": str(message.history_id)}


async def _body(request: Request) -> Body:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("a JSON object is expected")
    return body
