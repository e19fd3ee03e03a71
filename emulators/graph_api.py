"""Microsoft Graph v1.0 mail endpoints, served by Starlette over the emulator's state.

Every route exists under `/v1.0/me` and `/v1.0/users/{id or address}` (the signed-in user's own
mailbox only: delegated tokens cannot read another's). Each request goes, in order, through:

    bearer token (401 InvalidAuthenticationToken) -> mailbox (403/404) -> permission
    (403 ErrorAccessDenied) -> throttle (429/503, `graph_throttle`) -> latency -> handler

Handlers speak Graph's JSON (`graph_json`), delta (`graph_delta`) and subscriptions
(`graph_subscriptions`); the Prefer header chooses id type (`IdType="ImmutableId"`), body type
(`outlook.body-content-type`) and page size (`odata.maxpagesize`). Anything a handler refuses is
a `GraphError`. This module holds no state of its own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulators.graph_batch import batch_route
from emulators.graph_compose import (
    DRAFT_PROPERTIES,
    IMPORTANCES,
    draft_mime_with_changes,
    mime_from_graph_message,
)
from emulators.graph_delta import (
    DeltaEntry,
    DeltaOptions,
    DeltaState,
    DeltaTokens,
    TokenKind,
    folder_entries,
    message_entries,
    page_of,
    parse_change_type,
    parse_received_filter,
)
from emulators.graph_errors import GRAPH_JSON, GraphError, invalid_request
from emulators.graph_json import (
    SELECTABLE_FOLDER_PROPERTIES,
    SELECTABLE_MESSAGE_PROPERTIES,
    RenderOptions,
    attachment_json,
    attachments_json,
    find_attachment,
    folder_json,
    message_json,
    parse_select,
)
from emulators.graph_mime import Recipient
from emulators.graph_store import FOLDERS_DELTA_SCOPE, GraphStore, MailFolder, MailMessage
from emulators.graph_subscriptions import SubscriptionHub
from emulators.graph_throttle import MailboxThrottle
from emulators.graph_types import Clock, IdType, JSONObject
from emulators.microsoft_identity import AccessTokenInfo, IdentityPlatform, InvalidAccessTokenError

READ = frozenset({"Mail.Read", "Mail.ReadWrite"})
WRITE = frozenset({"Mail.ReadWrite"})
SEND = frozenset({"Mail.Send"})
PROFILE = frozenset({"User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All"})
FLAG_STATUSES = ("notFlagged", "flagged", "complete")
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",'
    ' client_id="00000003-0000-0000-c000-000000000000"'
)


@dataclass(frozen=True)
class Call:
    """Who is asking, about which mailbox, with which preferences."""

    request: Request
    token: AccessTokenInfo
    user_id: str
    render: RenderOptions
    page_size: int | None
    """From `Prefer: odata.maxpagesize`, capped; None when absent."""

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)


Handler = Callable[[Call], Awaitable[Response]]
Record = TypeVar("Record")


def graph_response(body: JSONObject | None, status: int = 200, **headers: str) -> Response:
    content = b"" if body is None else orjson.dumps(body)
    media_type = None if body is None else GRAPH_JSON
    return Response(content, status_code=status, media_type=media_type, headers=headers)


def parse_prefer(request: Request) -> dict[str, str]:
    preferences: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            preferences[name.strip().lower()] = value.strip().strip('"')
    return preferences


async def read_json(request: Request) -> JSONObject:
    try:
        body = await request.json()
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
    return body


def _int_query(call: Call, name: str, default: int, maximum: int) -> int:
    raw = call.query(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for query option {name}.")
    return min(int(raw), maximum)


class GraphApi:
    """The `/v1.0` routes over one store, identity platform, throttle and subscription hub."""

    def __init__(
        self,
        *,
        store: GraphStore,
        identity: IdentityPlatform,
        throttle: MailboxThrottle,
        subscriptions: SubscriptionHub,
        delta_tokens: DeltaTokens,
        clock: Clock,
        default_page_size: int = 10,
        max_page_size: int = 1000,
        empty_first_delta_page: bool = True,
    ) -> None:
        self.store = store
        self.identity = identity
        self.throttle = throttle
        self.subscriptions = subscriptions
        self.delta_tokens = delta_tokens
        self.clock = clock
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.empty_first_delta_page = empty_first_delta_page
        """Start each incremental round with an empty page that carries a nextLink (M2)."""

    def routes(self) -> list[BaseRoute]:
        mail: list[tuple[str, str, Handler, frozenset[str]]] = [
            ("", "GET", self.profile, PROFILE),
            ("/mailFolders", "GET", self.list_folders, READ),
            ("/mailFolders", "POST", self.create_folder, WRITE),
            ("/mailFolders/delta", "GET", self.folders_delta, READ),
            ("/mailFolders/{folder}", "GET", self.get_folder, READ),
            ("/mailFolders/{folder}", "PATCH", self.rename_folder, WRITE),
            ("/mailFolders/{folder}", "DELETE", self.delete_folder, WRITE),
            ("/mailFolders/{folder}/childFolders", "GET", self.list_folders, READ),
            ("/mailFolders/{folder}/childFolders", "POST", self.create_folder, WRITE),
            ("/mailFolders/{folder}/messages", "GET", self.list_messages, READ),
            ("/mailFolders/{folder}/messages/delta", "GET", self.messages_delta, READ),
            ("/mailFolders/{folder}/messages/{message}", "GET", self.get_message, READ),
            ("/messages", "GET", self.list_messages, READ),
            ("/messages", "POST", self.create_draft, WRITE),
            ("/messages/{message}", "GET", self.get_message, READ),
            ("/messages/{message}", "PATCH", self.update_message, WRITE),
            ("/messages/{message}", "DELETE", self.delete_message, WRITE),
            ("/messages/{message}/$value", "GET", self.get_mime, READ),
            ("/messages/{message}/move", "POST", self.move_message, WRITE),
            ("/messages/{message}/send", "POST", self.send_draft, SEND),
            ("/messages/{message}/attachments", "GET", self.list_attachments, READ),
            ("/messages/{message}/attachments/{attachment}", "GET", self.get_attachment, READ),
            (
                "/messages/{message}/attachments/{attachment}/$value",
                "GET",
                self.get_attachment_content,
                READ,
            ),
            ("/sendMail", "POST", self.send_mail, SEND),
        ]
        routes: list[BaseRoute] = [
            Route(f"{prefix}{path}", self._endpoint(handler, scopes), methods=[method])
            for prefix in ("/v1.0/me", "/v1.0/users/{user}")
            for path, method, handler, scopes in mail
        ]
        for path, method, handler in (
            ("/v1.0/subscriptions", "POST", self.create_subscription),
            ("/v1.0/subscriptions", "GET", self.list_subscriptions),
            ("/v1.0/subscriptions/{subscription}", "GET", self.get_subscription),
            ("/v1.0/subscriptions/{subscription}", "PATCH", self.renew_subscription),
            ("/v1.0/subscriptions/{subscription}", "DELETE", self.delete_subscription),
        ):
            routes.append(Route(path, self._endpoint(handler, READ), methods=[method]))
        routes.append(batch_route(self.authenticate))
        return routes

    # -- the pipeline every request goes through ----------------------------------------------

    def _endpoint(
        self, handler: Handler, scopes: frozenset[str]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                call = self._call(request, scopes)
                ticket = self.throttle.admit(
                    call.user_id, call.token.client_id, request.method, request.url.path
                )
            except GraphError as refusal:
                return refusal.to_response(request)
            try:
                if self.throttle.latency:
                    await asyncio.sleep(self.throttle.latency)
                response = await handler(call)
            except GraphError as error:
                response = error.to_response(request)
            except BaseException:
                self.throttle.release(ticket, 500)
                raise
            self.throttle.release(ticket, response.status_code)
            return response

        return endpoint

    def authenticate(self, request: Request) -> AccessTokenInfo:
        """The request's valid access token, or Graph's 401."""
        header = request.headers.get("authorization", "")
        scheme, _, bearer = header.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
                {"WWW-Authenticate": WWW_AUTHENTICATE},
            )
        try:
            token = self.identity.verify_access_token(bearer.strip())
        except InvalidAccessTokenError as error:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                str(error),
                {"WWW-Authenticate": WWW_AUTHENTICATE},
            ) from None
        return token

    def _call(self, request: Request, scopes: frozenset[str]) -> Call:
        token = self.authenticate(request)
        user_ref = request.path_params.get("user")
        others_mailbox = user_ref not in (None, token.oid) and (
            self.store.user_by_address(str(user_ref)) != token.oid
        )
        if others_mailbox or not scopes & token.scopes:
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        self.store.address_of(token.oid)  # a user without a mailbox gets Graph's 404
        preferences = parse_prefer(request)
        page_size = preferences.get("odata.maxpagesize")
        return Call(
            request=request,
            token=token,
            user_id=token.oid,
            render=RenderOptions(
                id_type=(
                    IdType.IMMUTABLE
                    if preferences.get("idtype", "").lower() == "immutableid"
                    else IdType.REST
                ),
                body_type=preferences.get("outlook.body-content-type", "").lower() or None,
            ),
            page_size=(
                min(int(page_size), self.max_page_size)
                if page_size and page_size.isdigit() and int(page_size) > 0
                else None
            ),
        )

    def _respond(self, call: Call, body: JSONObject | None, status: int = 200) -> Response:
        applied = []
        if call.render.id_type is IdType.IMMUTABLE:
            applied.append('IdType="ImmutableId"')
        if call.render.body_type:
            applied.append(f'outlook.body-content-type="{call.render.body_type}"')
        headers = {"Preference-Applied": ", ".join(applied)} if applied else {}
        return graph_response(body, status, **headers)

    def _folder(self, call: Call) -> MailFolder:
        return self.store.folder(call.user_id, call.request.path_params["folder"])

    def _message(self, call: Call) -> MailMessage:
        message = self.store.message(call.user_id, call.request.path_params["message"])
        folder_ref = call.request.path_params.get("folder")
        if folder_ref is not None and self.store.folder(call.user_id, folder_ref).id != (
            message.folder_id
        ):
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return message

    def _context_url(self, call: Call, tail: str) -> str:
        return f"{call.request.base_url}v1.0/$metadata#users('{call.user_id}')/{tail}"

    # -- profile and folders ------------------------------------------------------------------

    async def profile(self, call: Call) -> Response:
        address, name = self.store.address_of(call.user_id)
        return self._respond(
            call,
            {
                "@odata.context": f"{call.request.base_url}v1.0/$metadata#users/$entity",
                "id": call.user_id,
                "displayName": name,
                "mail": address,
                "userPrincipalName": address,
            },
        )

    def _folder_json(
        self, call: Call, folder: MailFolder, select: tuple[str, ...] | None
    ) -> JSONObject:
        return folder_json(folder, self.store.folder_counts(call.user_id, folder.id), select)

    async def list_folders(self, call: Call) -> Response:
        parent = call.request.path_params.get("folder")
        select = parse_select(call.query("$select"), SELECTABLE_FOLDER_PROPERTIES, "mailFolder")
        folders = self.store.folders(call.user_id, parent)
        return self._paged(
            call,
            folders,
            lambda folder: self._folder_json(call, folder, select),
            self._context_url(call, "mailFolders"),
        )

    async def get_folder(self, call: Call) -> Response:
        select = parse_select(call.query("$select"), SELECTABLE_FOLDER_PROPERTIES, "mailFolder")
        return self._respond(call, self._folder_json(call, self._folder(call), select))

    async def create_folder(self, call: Call) -> Response:
        body = await read_json(call.request)
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise invalid_request("displayName is required.")
        folder = self.store.create_folder(
            call.user_id, name, call.request.path_params.get("folder")
        )
        return self._respond(call, self._folder_json(call, folder, None), 201)

    async def rename_folder(self, call: Call) -> Response:
        body = await read_json(call.request)
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise invalid_request("displayName is required.")
        folder = self.store.rename_folder(call.user_id, call.request.path_params["folder"], name)
        return self._respond(call, self._folder_json(call, folder, None))

    async def delete_folder(self, call: Call) -> Response:
        self.store.delete_folder(call.user_id, call.request.path_params["folder"])
        return graph_response(None, 204)

    # -- delta --------------------------------------------------------------------------------

    async def folders_delta(self, call: Call) -> Response:
        return self._delta(
            call,
            FOLDERS_DELTA_SCOPE,
            SELECTABLE_FOLDER_PROPERTIES,
            "mailFolder",
            lambda state: folder_entries(self.store, state),
            self._context_url(call, "mailFolders/$delta"),
        )

    async def messages_delta(self, call: Call) -> Response:
        folder = self._folder(call)
        return self._delta(
            call,
            folder.id,
            SELECTABLE_MESSAGE_PROPERTIES,
            "message",
            lambda state: message_entries(self.store, state, call.render),
            self._context_url(call, f"mailFolders('{folder.id}')/messages/$delta"),
        )

    def _delta(
        self,
        call: Call,
        scope: str,
        selectable: frozenset[str],
        type_name: str,
        entries_of: Callable[[DeltaState], list[DeltaEntry]],
        context: str,
    ) -> Response:
        now = self.clock()
        generation = self.store.delta_generation(call.user_id, scope)
        delta_token, skip_token = call.query("$deltatoken"), call.query("$skiptoken")
        starts_round = delta_token is not None
        if delta_token is not None:
            state = self.delta_tokens.decode(
                delta_token, kind="delta", user_id=call.user_id, scope=scope, generation=generation
            )
            state = replace(state, upto=self.store.current_seq(call.user_id), after=None)
        elif skip_token is not None:
            state = self.delta_tokens.decode(
                skip_token, kind="skip", user_id=call.user_id, scope=scope, generation=generation
            )
        else:
            options = DeltaOptions(
                page_size=self.default_page_size,
                select=parse_select(call.query("$select"), selectable, type_name),
                change_type=parse_change_type(call.query("changeType")),
                received_filter=(
                    parse_received_filter(call.query("$filter")) if type_name == "message" else None
                ),
            )
            state = DeltaState(
                kind="skip",
                user_id=call.user_id,
                scope=scope,
                since=0,
                upto=self.store.current_seq(call.user_id),
                after=None,
                generation=generation,
                issued_at=now,
                options=options,
            )
        if call.page_size is not None:
            state = replace(state, options=replace(state.options, page_size=call.page_size))
        if starts_round and self.empty_first_delta_page:
            items, following = [], replace(state, kind="skip", issued_at=now)
        else:
            page = page_of(entries_of(state), state, now)
            items, following = page.items, page.next_state
        link_kind: TokenKind = following.kind
        link_name = "@odata.nextLink" if link_kind == "skip" else "@odata.deltaLink"
        token_name = "$skiptoken" if link_kind == "skip" else "$deltatoken"
        link = call.request.url.replace(
            query=urlencode({token_name: self.delta_tokens.encode(following)}, safe="$")
        )
        response = self._respond(
            call, {"@odata.context": context, "value": items, link_name: str(link)}
        )
        response.headers.append(
            "Preference-Applied", f"odata.maxpagesize={state.options.page_size}"
        )
        return response

    # -- messages -----------------------------------------------------------------------------

    def _paged(
        self,
        call: Call,
        records: Sequence[Record],
        render: Callable[[Record], JSONObject],
        context: str,
    ) -> Response:
        """A `$top`/`$skip` page of ``records``; only the page is rendered."""
        top = _int_query(call, "$top", self.default_page_size, self.max_page_size)
        skip = _int_query(call, "$skip", 0, 1 << 31)
        page = [render(record) for record in records[skip : skip + top]]
        body: JSONObject = {"@odata.context": context, "value": page}
        if skip + top < len(records):
            query = dict(call.request.query_params) | {"$top": str(top), "$skip": str(skip + top)}
            body["@odata.nextLink"] = str(
                call.request.url.replace(query=urlencode(query, safe="$,"))
            )
        return self._respond(call, body)

    async def list_messages(self, call: Call) -> Response:
        if call.query("$filter") or call.query("$search"):
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                "The emulator supports $filter only on delta (receivedDateTime ge/gt).",
            )
        select = parse_select(call.query("$select"), SELECTABLE_MESSAGE_PROPERTIES, "message")
        folder_ref = call.request.path_params.get("folder")
        folder_id = self.store.folder(call.user_id, folder_ref).id if folder_ref else None
        messages = self.store.messages(call.user_id, folder_id)
        if (call.query("$orderby") or "").replace("%20", " ").strip() == "receivedDateTime asc":
            messages.reverse()
        return self._paged(
            call,
            messages,
            lambda message: message_json(message, call.render, select),
            self._context_url(call, "messages"),
        )

    async def get_message(self, call: Call) -> Response:
        select = parse_select(call.query("$select"), SELECTABLE_MESSAGE_PROPERTIES, "message")
        return self._respond(call, message_json(self._message(call), call.render, select))

    async def get_mime(self, call: Call) -> Response:
        return Response(self._message(call).mime, media_type="message/rfc822")

    async def list_attachments(self, call: Call) -> Response:
        message = self._message(call)
        context = self._context_url(call, "messages/attachments")
        return self._respond(call, {"@odata.context": context, "value": attachments_json(message)})

    async def get_attachment(self, call: Call) -> Response:
        message = self._message(call)
        ref, attachment = find_attachment(message, call.request.path_params["attachment"])
        return self._respond(call, attachment_json(message, ref, attachment))

    async def get_attachment_content(self, call: Call) -> Response:
        message = self._message(call)
        _, attachment = find_attachment(message, call.request.path_params["attachment"])
        return Response(attachment.content, media_type=attachment.content_type)

    async def update_message(self, call: Call) -> Response:
        body = await read_json(call.request)
        changes: dict[str, Any] = {}
        message = self._message(call)
        if any(name in body for name in DRAFT_PROPERTIES):
            if not message.is_draft:
                raise GraphError(
                    400,
                    "ErrorInvalidPropertyUpdateSentMessage",
                    "Update operation is invalid for property of a sent message.",
                )
            changes["mime"] = draft_mime_with_changes(message.content, body, self._sender(call))
        for name, value in body.items():
            if name in DRAFT_PROPERTIES:
                continue
            if name == "isRead" and isinstance(value, bool):
                changes["is_read"] = value
            elif name == "flag" and isinstance(value, dict):
                if value.get("flagStatus") not in FLAG_STATUSES:
                    raise invalid_request(f"Invalid flagStatus {value.get('flagStatus')!r}.")
                changes["flag_status"] = value["flagStatus"]
            elif name == "categories" and isinstance(value, list):
                changes["categories"] = [str(c) for c in value]
            elif name == "importance" and value in IMPORTANCES:
                changes["importance"] = value
            else:
                raise GraphError(
                    400,
                    "ErrorInvalidProperty",
                    f"The property '{name}' cannot be updated this way (emulator supports "
                    "isRead, flag, categories, importance and, on drafts, subject, body, "
                    "recipients).",
                )
        updated = self.store.update_message(call.user_id, message.immutable_id, **changes)
        return self._respond(call, message_json(updated, call.render))

    async def move_message(self, call: Call) -> Response:
        body = await read_json(call.request)
        destination = body.get("destinationId")
        if not isinstance(destination, str) or not destination:
            raise invalid_request("destinationId is required.")
        message = self._message(call)
        moved = self.store.move_message(call.user_id, message.immutable_id, destination)
        return self._respond(call, message_json(moved, call.render), 201)

    async def delete_message(self, call: Call) -> Response:
        self.store.delete_message(call.user_id, self._message(call).immutable_id)
        return graph_response(None, 204)

    # -- composing and sending ----------------------------------------------------------------

    def _sender(self, call: Call) -> Recipient:
        address, name = self.store.address_of(call.user_id)
        return Recipient(name, address)

    async def create_draft(self, call: Call) -> Response:
        """A draft from a message resource (JSON) or, as Graph documents for MIME, from the
        base64 MIME of the whole message as ``text/plain``; either lands in Drafts."""
        mime = await _mime_body(call)
        if mime is None:
            mime = mime_from_graph_message(await read_json(call.request), self._sender(call))
        draft = self.store.deliver(call.user_id, "drafts", mime, is_read=True, is_draft=True)
        return self._respond(call, message_json(draft, call.render), 201)

    async def send_draft(self, call: Call) -> Response:
        draft = self._message(call)
        if not draft.is_draft:
            raise invalid_request("Only drafts can be sent.")
        self._send(call, draft.mime, save_copy=True)
        self.store.delete_message(call.user_id, draft.immutable_id)
        return graph_response(None, 202)

    async def send_mail(self, call: Call) -> Response:
        mime = await _mime_body(call)
        if mime is not None:
            self._send(call, mime, save_copy=True)
            return graph_response(None, 202)
        body = await read_json(call.request)
        message = body.get("message")
        if not isinstance(message, dict):
            raise invalid_request("The 'message' parameter is required.")
        mime = mime_from_graph_message(message, self._sender(call))
        self._send(call, mime, save_copy=body.get("saveToSentItems", True) is not False)
        return graph_response(None, 202)

    def _send(self, call: Call, mime: bytes, *, save_copy: bool) -> None:
        """Deliver to every emulated recipient's inbox and keep a copy in sentitems."""
        sent = self.store.deliver(call.user_id, "sentitems", mime, is_read=True)
        content = sent.content
        if not content.to and not content.cc and not content.bcc:
            self.store.delete_message(call.user_id, sent.immutable_id)
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient is required, but none were found.",
            )
        if not save_copy:
            self.store.delete_message(call.user_id, sent.immutable_id)
        for recipient in {r.address.lower() for r in (*content.to, *content.cc, *content.bcc)}:
            user_id = self.store.user_by_address(recipient)
            if user_id is not None:
                self.store.deliver(user_id, "inbox", mime)

    # -- subscriptions ------------------------------------------------------------------------

    async def create_subscription(self, call: Call) -> Response:
        body = await read_json(call.request)
        subscription = await self.subscriptions.create(
            call.user_id, call.token.client_id, body, call.render.id_type
        )
        return self._respond(call, subscription.to_json(), 201)

    async def list_subscriptions(self, call: Call) -> Response:
        subscriptions = self.subscriptions.subscriptions_of(call.user_id)
        return self._respond(call, {"value": [s.to_json() for s in subscriptions]})

    async def get_subscription(self, call: Call) -> Response:
        subscription_id = call.request.path_params["subscription"]
        return self._respond(call, self.subscriptions.get(call.user_id, subscription_id).to_json())

    async def renew_subscription(self, call: Call) -> Response:
        subscription_id = call.request.path_params["subscription"]
        body = await read_json(call.request)
        renewed = self.subscriptions.renew(call.user_id, subscription_id, body)
        return self._respond(call, renewed.to_json())

    async def delete_subscription(self, call: Call) -> Response:
        self.subscriptions.delete(call.user_id, call.request.path_params["subscription"])
        return graph_response(None, 204)


async def _mime_body(call: Call) -> bytes | None:
    """The MIME of a ``text/plain`` request body (base64, as Graph requires); None for JSON."""
    if not call.request.headers.get("content-type", "").startswith("text/plain"):
        return None
    try:
        return base64.b64decode(await call.request.body(), validate=True)
    except binascii.Error:
        raise invalid_request("A MIME body must be base64.") from None
