"""Gmail API v1 routes under ``/gmail/v1/users/{userId}/...``, as Google documents them.

Covered: getProfile; messages list/get (minimal, metadata, full, raw)/send/modify/batchModify/
batchDelete/trash/untrash/delete and attachments.get; labels list/get/create; threads list/get;
history.list; watch/stop; drafts list/get/create/update/delete/send. Every route goes through the
``Gateway`` (auth, faults, scopes, concurrency, quota, stats) and then one handler here, which
only parses parameters, calls the mailbox and renders JSON. Mailbox state lives in
``emulators.gmail_store``; nothing here keeps state except the attachment id issuer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.gmail_errors import GmailError
from emulators.gmail_gateway import (
    COMPOSE,
    DELETE,
    LABELS_READ,
    LABELS_WRITE,
    READ,
    SCOPE_METADATA,
    SEND,
    WRITE,
    Caller,
    Gateway,
)
from emulators.gmail_history import HistoryType
from emulators.gmail_records import Page
from emulators.gmail_render import (
    JSON,
    AttachmentIds,
    MessageFormat,
    b64url,
    b64url_decode,
    draft_json,
    history_json,
    label_json,
    message_json,
    profile_json,
    short_message_json,
    thread_json,
)

T = TypeVar("T")

USERS = "/gmail/v1/users/{user_id}"
MAX_PAGE_SIZE = 500


def gmail_routes(gateway: Gateway, attachment_ids: AttachmentIds) -> list[Route]:
    """All Gmail API routes; more specific paths first, as Starlette matches in order."""
    api = _Handlers(attachment_ids)
    route = gateway.route
    messages, drafts = f"{USERS}/messages", f"{USERS}/drafts"
    return [
        route(f"{USERS}/profile", "GET", "getProfile", READ | SEND, api.get_profile),
        route(messages, "GET", "messages.list", READ, api.list_messages),
        route(f"{messages}/send", "POST", "messages.send", SEND, api.send_message),
        route(f"{messages}/batchModify", "POST", "messages.batchModify", WRITE, api.batch_modify),
        route(f"{messages}/batchDelete", "POST", "messages.batchDelete", DELETE, api.batch_delete),
        route(f"{messages}/{{message_id}}", "GET", "messages.get", READ, api.get_message),
        route(f"{messages}/{{message_id}}", "DELETE", "messages.delete", DELETE, api.delete),
        route(f"{messages}/{{message_id}}/modify", "POST", "messages.modify", WRITE, api.modify),
        route(f"{messages}/{{message_id}}/trash", "POST", "messages.trash", WRITE, api.trash),
        route(f"{messages}/{{message_id}}/untrash", "POST", "messages.untrash", WRITE, api.untrash),
        route(
            f"{messages}/{{message_id}}/attachments/{{attachment_id}}",
            "GET",
            "messages.attachments.get",
            READ - {SCOPE_METADATA},
            api.get_attachment,
        ),
        route(f"{USERS}/labels", "GET", "labels.list", LABELS_READ, api.list_labels),
        route(f"{USERS}/labels", "POST", "labels.create", LABELS_WRITE, api.create_label),
        route(f"{USERS}/labels/{{label_id}}", "GET", "labels.get", LABELS_READ, api.get_label),
        route(f"{USERS}/threads", "GET", "threads.list", READ, api.list_threads),
        route(f"{USERS}/threads/{{thread_id}}", "GET", "threads.get", READ, api.get_thread),
        route(f"{USERS}/history", "GET", "history.list", READ, api.list_history),
        route(f"{USERS}/watch", "POST", "watch", READ, api.watch),
        route(f"{USERS}/stop", "POST", "stop", READ, api.stop),
        route(drafts, "GET", "drafts.list", COMPOSE, api.list_drafts),
        route(drafts, "POST", "drafts.create", COMPOSE, api.create_draft),
        route(f"{drafts}/send", "POST", "drafts.send", SEND, api.send_draft),
        route(f"{drafts}/{{draft_id}}", "GET", "drafts.get", COMPOSE, api.get_draft),
        route(f"{drafts}/{{draft_id}}", "PUT", "drafts.update", COMPOSE, api.update_draft),
        route(f"{drafts}/{{draft_id}}", "DELETE", "drafts.delete", COMPOSE, api.delete_draft),
    ]


class _Handlers:
    def __init__(self, attachment_ids: AttachmentIds) -> None:
        self._attachment_ids = attachment_ids

    # -- profile, messages ----------------------------------------------------------------

    async def get_profile(self, request: Request, caller: Caller) -> Response:
        return JSONResponse(profile_json(caller.mailbox.profile()))

    async def list_messages(self, request: Request, caller: Caller) -> Response:
        page = caller.mailbox.list_messages(**_listing(request, caller))
        return _page_json(page, "messages", lambda m: {"id": m.id, "threadId": m.thread_id})

    async def get_message(self, request: Request, caller: Caller) -> Response:
        fmt = _format(request, caller)
        message = caller.mailbox.get(request.path_params["message_id"])
        headers = request.query_params.getlist("metadataHeaders")
        return JSONResponse(message_json(message, fmt, self._attachment_ids, headers))

    async def get_attachment(self, request: Request, caller: Caller) -> Response:
        message_id = request.path_params["message_id"]
        message = caller.mailbox.get(message_id)
        named = AttachmentIds.parse(request.path_params["attachment_id"])
        part = message.parsed.payload.find(named[1]) if named and named[0] == message_id else None
        if part is None or not part.filename:
            raise GmailError.invalid("Invalid attachment token")
        attachment_id = request.path_params["attachment_id"]
        body = {"attachmentId": attachment_id, "size": len(part.body), "data": b64url(part.body)}
        return JSONResponse(body)

    async def send_message(self, request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        message = caller.mailbox.send(_raw(body), thread_id=body.get("threadId"))
        return JSONResponse(short_message_json(message))

    async def modify(self, request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        message = caller.mailbox.modify(
            request.path_params["message_id"],
            add=_strings(body, "addLabelIds"),
            remove=_strings(body, "removeLabelIds"),
        )
        return JSONResponse(short_message_json(message))

    async def batch_modify(self, request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        caller.mailbox.batch_modify(
            _strings(body, "ids"),
            add=_strings(body, "addLabelIds"),
            remove=_strings(body, "removeLabelIds"),
        )
        return Response(status_code=204)

    async def batch_delete(self, request: Request, caller: Caller) -> Response:
        caller.mailbox.batch_delete(_strings(await _json_body(request), "ids"))
        return Response(status_code=204)

    async def trash(self, request: Request, caller: Caller) -> Response:
        return JSONResponse(
            short_message_json(caller.mailbox.trash(request.path_params["message_id"]))
        )

    async def untrash(self, request: Request, caller: Caller) -> Response:
        return JSONResponse(
            short_message_json(caller.mailbox.untrash(request.path_params["message_id"]))
        )

    async def delete(self, request: Request, caller: Caller) -> Response:
        caller.mailbox.delete(request.path_params["message_id"])
        return Response(status_code=204)

    # -- labels, threads, history, push ---------------------------------------------------

    async def list_labels(self, request: Request, caller: Caller) -> Response:
        return JSONResponse({"labels": [label_json(lb) for lb in caller.mailbox.labels()]})

    async def get_label(self, request: Request, caller: Caller) -> Response:
        label, counts = caller.mailbox.label(request.path_params["label_id"])
        return JSONResponse(label_json(label, counts))

    async def create_label(self, request: Request, caller: Caller) -> Response:
        name = (await _json_body(request)).get("name")
        if not isinstance(name, str):
            raise GmailError.invalid("Invalid label name")
        return JSONResponse(label_json(caller.mailbox.create_label(name)))

    async def list_threads(self, request: Request, caller: Caller) -> Response:
        page = caller.mailbox.list_threads(**_listing(request, caller))
        return _page_json(
            page,
            "threads",
            lambda t: {"id": t.id, "snippet": t.snippet, "historyId": str(t.history_id)},
        )

    async def get_thread(self, request: Request, caller: Caller) -> Response:
        fmt = _format(request, caller)
        thread_id = request.path_params["thread_id"]
        messages = caller.mailbox.thread(thread_id)
        headers = request.query_params.getlist("metadataHeaders")
        return JSONResponse(thread_json(thread_id, messages, fmt, self._attachment_ids, headers))

    async def list_history(self, request: Request, caller: Caller) -> Response:
        params = request.query_params
        start = params.get("startHistoryId")
        if start is None:
            raise GmailError.invalid("Required parameter: startHistoryId")
        if not start.isdigit():
            raise GmailError.invalid(f"Invalid value at 'start_history_id' ({start})")
        try:
            types = [HistoryType(t) for t in params.getlist("historyTypes")]
        except ValueError as exc:
            raise GmailError.invalid("Invalid value at 'history_types'") from exc
        result = caller.mailbox.history(
            int(start),
            page_token=params.get("pageToken"),
            history_types=types,
            label_id=params.get("labelId"),
            max_results=_max_results(request),
        )
        body: JSON = {}
        if result.records:
            body["history"] = [history_json(record, types) for record in result.records]
        if result.next_page_token:
            body["nextPageToken"] = result.next_page_token
        body["historyId"] = str(result.history_id)
        return JSONResponse(body)

    async def watch(self, request: Request, caller: Caller) -> Response:
        body = await _json_body(request)
        topic = body.get("topicName")
        watch = caller.mailbox.watch(
            topic if isinstance(topic, str) else "", _strings(body, "labelIds")
        )
        return JSONResponse(
            {"historyId": str(watch.history_id), "expiration": str(watch.expiration_ms)}
        )

    async def stop(self, request: Request, caller: Caller) -> Response:
        caller.mailbox.stop()
        return Response(status_code=204)

    # -- drafts ---------------------------------------------------------------------------

    async def list_drafts(self, request: Request, caller: Caller) -> Response:
        page = caller.mailbox.list_drafts(
            page_token=request.query_params.get("pageToken"), max_results=_max_results(request)
        )
        return _page_json(page, "drafts", draft_json)

    async def get_draft(self, request: Request, caller: Caller) -> Response:
        fmt = _format(request, caller)
        draft = caller.mailbox.get_draft(request.path_params["draft_id"])
        return JSONResponse(draft_json(draft, fmt, self._attachment_ids))

    async def create_draft(self, request: Request, caller: Caller) -> Response:
        message = _draft_message(await _json_body(request))
        draft = caller.mailbox.create_draft(_raw(message), thread_id=message.get("threadId"))
        return JSONResponse(draft_json(draft, MessageFormat.MINIMAL, self._attachment_ids))

    async def update_draft(self, request: Request, caller: Caller) -> Response:
        message = _draft_message(await _json_body(request))
        draft = caller.mailbox.update_draft(
            request.path_params["draft_id"], _raw(message), thread_id=message.get("threadId")
        )
        return JSONResponse(draft_json(draft, MessageFormat.MINIMAL, self._attachment_ids))

    async def delete_draft(self, request: Request, caller: Caller) -> Response:
        caller.mailbox.delete_draft(request.path_params["draft_id"])
        return Response(status_code=204)

    async def send_draft(self, request: Request, caller: Caller) -> Response:
        draft_id = (await _json_body(request)).get("id")
        if not isinstance(draft_id, str):
            raise GmailError.invalid("Invalid draft id")
        return JSONResponse(short_message_json(caller.mailbox.send_draft(draft_id)))


def _page_json(page: Page[T], key: str, item: Callable[[T], JSON]) -> Response:
    body: JSON = {}
    if page.items:
        body[key] = [item(entry) for entry in page.items]
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    body["resultSizeEstimate"] = page.result_size_estimate
    return JSONResponse(body)


def _listing(request: Request, caller: Caller) -> dict[str, Any]:
    params = request.query_params
    query = params.get("q")
    if query and caller.metadata_only:
        raise GmailError(403, "Metadata scope does not support 'q' parameter", "forbidden")
    return {
        "label_ids": params.getlist("labelIds"),
        "include_spam_trash": params.get("includeSpamTrash", "false").lower() == "true",
        "query": query,
        "page_token": params.get("pageToken"),
        "max_results": _max_results(request),
    }


def _max_results(request: Request, default: int = 100) -> int:
    value = request.query_params.get("maxResults")
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise GmailError.invalid(f"Invalid value at 'max_results' ({value})")
    return min(int(value), MAX_PAGE_SIZE)  # Gmail caps larger requests silently


def _format(request: Request, caller: Caller) -> MessageFormat:
    value = request.query_params.get("format", "full").lower()
    try:
        fmt = MessageFormat(value)
    except ValueError as exc:
        raise GmailError.invalid(f"Invalid value at 'format' ({value})") from exc
    if caller.metadata_only and fmt in (MessageFormat.FULL, MessageFormat.RAW):
        raise GmailError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
    return fmt


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GmailError.invalid("Invalid JSON payload received.") from exc
    if not isinstance(body, dict):
        raise GmailError.invalid("Invalid JSON payload received.")
    return body


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GmailError.invalid(f"Invalid value at '{key}'")
    return value


def _draft_message(body: dict[str, Any]) -> dict[str, Any]:
    message = body.get("message")
    if not isinstance(message, dict):
        raise GmailError.invalid("Missing draft message")
    return message


def _raw(body: dict[str, Any]) -> bytes:
    raw = body.get("raw")
    if not isinstance(raw, str) or not raw:
        raise GmailError.invalid(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
        )
    try:
        return b64url_decode(raw)
    except ValueError as exc:
        raise GmailError.invalid("Invalid value for ByteString") from exc
