"""HTTP twins of `MicrosoftEmulator`'s Python controls, for tests running in another process.

No authentication: these routes exist only on the emulator. Bodies and answers are JSON with
camelCase names; `{user}` is an object id or an address; `{message}` a REST or immutable id;
`{folder}` an id or a well-known name.

    POST   /_emulator/apps                                {clientId, clientSecret, redirectUris,
                                                           defaultScopes?}
    POST   /_emulator/users                               {address, displayName?, oid?}
    POST   /_emulator/users/{user}/revoke                 {clientId?}
    POST   /_emulator/users/{user}/expire-access-tokens
    POST   /_emulator/tokens                              {user, clientId, scopes?} -> accessToken
    GET    /_emulator/users/{user}/folders                the whole tree, flat
    POST   /_emulator/users/{user}/folders                {displayName, parent?}
    PATCH  /_emulator/users/{user}/folders/{folder}       {displayName}
    DELETE /_emulator/users/{user}/folders/{folder}
    POST   /_emulator/users/{user}/messages               {folder?, mime (base64)} or
                                                          {folder?, subject, from, to, cc, text,
                                                           html, inReplyTo, receivedDateTime,
                                                           isRead, ...}
    PATCH  /_emulator/users/{user}/messages/{message}     {isRead?, flagStatus?, categories?}
    POST   /_emulator/users/{user}/messages/{message}/move  {folder}
    DELETE /_emulator/users/{user}/messages/{message}
    POST   /_emulator/users/{user}/expire-delta-tokens    {folder?}
    POST   /_emulator/faults                              {status, count?, retryAfter?, user?}
    PUT    /_emulator/latency                             {seconds}
    GET    /_emulator/stats          DELETE /_emulator/stats (reset)
    GET    /_emulator/notifications                       every notification POST attempted
    POST   /_emulator/subscriptions/{id}/lifecycle        {event}
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulators.graph_errors import GraphError
from emulators.graph_store import MailFolder, MailMessage
from emulators.graph_types import JSONObject
from emulators.microsoft_identity import DEFAULT_APP_SCOPES

if TYPE_CHECKING:
    from emulators.graph_emulator import MicrosoftEmulator

Control = Callable[[Request, JSONObject], Any]


def message_summary(message: MailMessage) -> JSONObject:
    return {
        "id": message.rest_id,
        "immutableId": message.immutable_id,
        "parentFolderId": message.folder_id,
        "internetMessageId": message.internet_message_id,
        "conversationId": message.conversation_id,
        "subject": message.content.subject,
    }


def folder_summary(folder: MailFolder) -> JSONObject:
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "wellKnownName": folder.well_known_name,
    }


def _control(handler: Control) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body: JSONObject = {}
        if request.method in ("POST", "PATCH", "PUT") and await request.body():
            body = await request.json()
        try:
            result = handler(request, body)
        except GraphError as error:
            return error.to_response(request)
        except KeyError as error:
            return JSONResponse({"error": {"code": "NotFound", "message": str(error)}}, 404)
        return Response(status_code=204) if result is None else JSONResponse(result)

    return endpoint


def control_routes(emulator: MicrosoftEmulator) -> list[BaseRoute]:
    def add_app(request: Request, body: JSONObject) -> JSONObject:
        app = emulator.register_app(
            body["clientId"],
            body.get("clientSecret"),
            body.get("redirectUris", []),
            body.get("defaultScopes") or DEFAULT_APP_SCOPES,
        )
        return {"clientId": app.client_id, "redirectUris": list(app.redirect_uris)}

    def add_user(request: Request, body: JSONObject) -> JSONObject:
        user = emulator.add_user(body["address"], body.get("displayName", ""), oid=body.get("oid"))
        return {"oid": user.oid, "tenantId": user.tenant_id, "address": user.username}

    def revoke(request: Request, body: JSONObject) -> None:
        emulator.revoke_grants(request.path_params["user"], body.get("clientId"))

    def expire_access_tokens(request: Request, body: JSONObject) -> None:
        emulator.expire_access_tokens(request.path_params["user"])

    def issue_token(request: Request, body: JSONObject) -> JSONObject:
        scopes = body.get("scopes") or DEFAULT_APP_SCOPES
        return {"accessToken": emulator.issue_access_token(body["user"], body["clientId"], scopes)}

    def list_folders(request: Request, body: JSONObject) -> JSONObject:
        return {"value": [folder_summary(f) for f in emulator.folders(request.path_params["user"])]}

    def create_folder(request: Request, body: JSONObject) -> JSONObject:
        user = request.path_params["user"]
        return folder_summary(emulator.create_folder(user, body["displayName"], body.get("parent")))

    def rename_folder(request: Request, body: JSONObject) -> JSONObject:
        user, folder = request.path_params["user"], request.path_params["folder"]
        return folder_summary(emulator.rename_folder(user, folder, body["displayName"]))

    def delete_folder(request: Request, body: JSONObject) -> None:
        emulator.delete_folder(request.path_params["user"], request.path_params["folder"])

    def add_message(request: Request, body: JSONObject) -> JSONObject:
        user = request.path_params["user"]
        received = body.get("receivedDateTime")
        common: dict[str, Any] = {
            "folder": body.get("folder", "inbox"),
            "received_at": datetime.fromisoformat(received) if received else None,
            "is_read": bool(body.get("isRead", False)),
            "flag_status": body.get("flagStatus", "notFlagged"),
            "categories": body.get("categories", ()),
        }
        if "mime" in body:
            message = emulator.deliver(user, base64.b64decode(body["mime"]), **common)
        else:
            message = emulator.add_message(
                user,
                subject=body.get("subject", ""),
                sender=body.get("from", "Sender <sender@example.com>"),
                to=body.get("to"),
                cc=body.get("cc", ()),
                text=body.get("text"),
                html=body.get("html"),
                message_id=body.get("internetMessageId"),
                in_reply_to=body.get("inReplyTo"),
                references=body.get("references", ()),
                **common,
            )
        return message_summary(message)

    def update_message(request: Request, body: JSONObject) -> JSONObject:
        changes = {
            "is_read": body.get("isRead"),
            "flag_status": body.get("flagStatus"),
            "categories": body.get("categories"),
            "importance": body.get("importance"),
        }
        user, message = request.path_params["user"], request.path_params["message"]
        return message_summary(emulator.update_message(user, message, **changes))

    def move_message(request: Request, body: JSONObject) -> JSONObject:
        user, message = request.path_params["user"], request.path_params["message"]
        return message_summary(emulator.move_message(user, message, body["folder"]))

    def delete_message(request: Request, body: JSONObject) -> None:
        emulator.delete_message(request.path_params["user"], request.path_params["message"])

    def expire_delta_tokens(request: Request, body: JSONObject) -> None:
        emulator.expire_delta_tokens(request.path_params["user"], body.get("folder"))

    def inject_fault(request: Request, body: JSONObject) -> None:
        emulator.inject_fault(
            int(body.get("status", 429)),
            int(body.get("count", 1)),
            body.get("retryAfter"),
            body.get("user"),
        )

    def set_latency(request: Request, body: JSONObject) -> None:
        emulator.set_latency(float(body["seconds"]))

    def stats(request: Request, body: JSONObject) -> JSONObject:
        return emulator.stats()

    def reset_stats(request: Request, body: JSONObject) -> None:
        emulator.reset_stats()

    def notifications(request: Request, body: JSONObject) -> JSONObject:
        return {"value": [asdict(d) for d in emulator.notifications()]}

    def lifecycle(request: Request, body: JSONObject) -> None:
        emulator.send_lifecycle_event(request.path_params["subscription"], body["event"])

    user = "/_emulator/users/{user}"
    table: list[tuple[str, str, Control]] = [
        ("/_emulator/apps", "POST", add_app),
        ("/_emulator/users", "POST", add_user),
        (f"{user}/revoke", "POST", revoke),
        (f"{user}/expire-access-tokens", "POST", expire_access_tokens),
        ("/_emulator/tokens", "POST", issue_token),
        (f"{user}/folders", "GET", list_folders),
        (f"{user}/folders", "POST", create_folder),
        (f"{user}/folders/{{folder}}", "PATCH", rename_folder),
        (f"{user}/folders/{{folder}}", "DELETE", delete_folder),
        (f"{user}/messages", "POST", add_message),
        (f"{user}/messages/{{message}}", "PATCH", update_message),
        (f"{user}/messages/{{message}}/move", "POST", move_message),
        (f"{user}/messages/{{message}}", "DELETE", delete_message),
        (f"{user}/expire-delta-tokens", "POST", expire_delta_tokens),
        ("/_emulator/faults", "POST", inject_fault),
        ("/_emulator/latency", "PUT", set_latency),
        ("/_emulator/stats", "GET", stats),
        ("/_emulator/stats", "DELETE", reset_stats),
        ("/_emulator/notifications", "GET", notifications),
        ("/_emulator/subscriptions/{subscription}/lifecycle", "POST", lifecycle),
    ]
    return [Route(path, _control(handler), methods=[method]) for path, method, handler in table]
