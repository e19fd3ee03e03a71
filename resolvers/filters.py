"""Filters of message and thread lists: GraphQL inputs and the SQL conditions they mean.

Inputs become frozen, hashable criteria (DataLoader keys); criteria become conditions on the
``messages m`` / ``threads t`` aliases. Ids that do not decode become id 0, which matches
nothing: a foreign or malformed id filters to an empty list, like an unknown one. Tenancy is
not decided here: callers always add the caller's account condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import strawberry

from app.services.errors import InvalidInput
from resolvers.ids import decode_typed
from resolvers.search import MAX_SEARCH_LENGTH, search_condition
from resolvers.sql import Statement

_MAX_TEXT = 320


def _number(global_id: strawberry.ID | None, type_name: str) -> int | None:
    if global_id is None:
        return None
    return decode_typed(global_id, type_name) or 0


def _instant(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _text(value: str | None, field: str, limit: int = _MAX_TEXT) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise InvalidInput(f"`{field}` is limited to {limit} characters.", field=field)
    return value.strip() or None


def _contains(sql: Statement, column: str, text: str) -> str:
    """Case-insensitive substring match (LIKE is case-insensitive for ASCII on SQLite)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    operator = "ILIKE" if sql.postgres else "LIKE"
    return f"{column} {operator} {sql('%' + escaped + '%')} ESCAPE '\\'"


def _address_matches(sql: Statement, columns: tuple[str, ...], text: str) -> str:
    """Some address in these JSON columns has ``text`` in its name or email (not in the JSON
    keys, which every row has)."""
    if sql.postgres:
        items = " UNION ALL ".join(f"SELECT jsonb_array_elements(m.{c}) AS a" for c in columns)
        name, email = "x.a->>'name'", "x.a->>'email'"
    else:
        items = " UNION ALL ".join(
            f"SELECT value AS a FROM json_each(m.{c})"  # noqa: S608 (column names are constants)
            for c in columns
        )
        name, email = "json_extract(x.a, '$.name')", "json_extract(x.a, '$.email')"
    either = f"{_contains(sql, name, text)} OR {_contains(sql, email, text)}"
    return f"EXISTS (SELECT 1 FROM ({items}) AS x WHERE {either})"  # noqa: S608 (constant text; values are parameters)


@dataclass(frozen=True, slots=True)
class MessageCriteria:
    """What a message list keeps, beyond tenancy and the page."""

    account_id: int | None = None
    folder_id: int | None = None
    thread_id: int | None = None
    unread: bool | None = None
    starred: bool | None = None
    has_attachments: bool | None = None
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None

    def where(self, sql: Statement) -> list[str]:
        conditions: list[str] = []
        if self.account_id is not None:
            conditions.append(f"m.account_id = {sql(self.account_id)}")
        if self.thread_id is not None:
            conditions.append(f"m.thread_id = {sql(self.thread_id)}")
        if self.folder_id is not None:
            conditions.append(
                "m.id IN (SELECT message_id FROM message_labels "  # noqa: S608 (constant text; values are parameters)
                f"WHERE folder_id = {sql(self.folder_id)})"
            )
        for column, flag in (
            ("m.unread", self.unread),
            ("m.starred", self.starred),
            ("m.has_attachments", self.has_attachments),
        ):
            if flag is not None:
                conditions.append(f"{column} = {sql(flag)}")
        if self.sender is not None:
            conditions.append(_address_matches(sql, ("from_addresses",), self.sender))
        if self.recipient is not None:
            recipients = ("to_addresses", "cc_addresses", "bcc_addresses")
            conditions.append(_address_matches(sql, recipients, self.recipient))
        if self.subject is not None:
            conditions.append(_contains(sql, "m.subject", self.subject))
        if self.since is not None:
            conditions.append(f"m.date >= {sql(self.since)}")
        if self.until is not None:
            conditions.append(f"m.date < {sql(self.until)}")
        if self.search is not None:
            condition = search_condition(sql, self.search, "m.id")
            if condition is not None:
                conditions.append(condition)
        return conditions


@strawberry.input(description="Which messages a list keeps. Every given condition must hold.")
class MessageFilter:
    account_id: strawberry.ID | None = None
    folder_id: strawberry.ID | None = strawberry.field(
        default=None, description="In this folder or label."
    )
    thread_id: strawberry.ID | None = None
    unread: bool | None = None
    starred: bool | None = None
    has_attachments: bool | None = None
    from_: str | None = strawberry.field(
        default=None, name="from", description="Part of a sender's name or address."
    )
    to: str | None = strawberry.field(
        default=None, description="Part of a To, Cc or Bcc recipient's name or address."
    )
    subject: str | None = strawberry.field(default=None, description="Part of the subject.")
    since: datetime | None = strawberry.field(default=None, description="Date at or after.")
    until: datetime | None = strawberry.field(default=None, description="Date before.")
    search: str | None = strawberry.field(
        default=None,
        description="Words that must all occur in the subject, addresses, snippet or cached "
        "text body (whole words, any case).",
    )

    def criteria(self) -> MessageCriteria:
        return MessageCriteria(
            account_id=_number(self.account_id, "Account"),
            folder_id=_number(self.folder_id, "Folder"),
            thread_id=_number(self.thread_id, "Thread"),
            unread=self.unread,
            starred=self.starred,
            has_attachments=self.has_attachments,
            sender=_text(self.from_, "from"),
            recipient=_text(self.to, "to"),
            subject=_text(self.subject, "subject"),
            since=_instant(self.since),
            until=_instant(self.until),
            search=_text(self.search, "search", MAX_SEARCH_LENGTH),
        )


@dataclass(frozen=True, slots=True)
class ThreadCriteria:
    """What a thread list keeps, beyond tenancy and the page."""

    account_id: int | None = None
    folder_id: int | None = None
    unread: bool | None = None
    search: str | None = None

    def where(self, sql: Statement) -> list[str]:
        conditions: list[str] = []
        if self.account_id is not None:
            conditions.append(f"t.account_id = {sql(self.account_id)}")
        if self.unread is not None:
            conditions.append("t.unread_count > 0" if self.unread else "t.unread_count = 0")
        inner = MessageCriteria(folder_id=self.folder_id, search=self.search).where(sql)
        if inner:
            conditions.append(
                f"t.id IN (SELECT m.thread_id FROM messages m WHERE {' AND '.join(inner)})"  # noqa: S608 (constant text; values are parameters)
            )
        return conditions


@strawberry.input(description="Which threads a list keeps. Every given condition must hold.")
class ThreadFilter:
    account_id: strawberry.ID | None = None
    folder_id: strawberry.ID | None = strawberry.field(
        default=None, description="With a message in this folder or label."
    )
    unread: bool | None = strawberry.field(default=None, description="With unread messages.")
    search: str | None = strawberry.field(
        default=None, description="With a message matching these words (as MessageFilter)."
    )

    def criteria(self) -> ThreadCriteria:
        return ThreadCriteria(
            account_id=_number(self.account_id, "Account"),
            folder_id=_number(self.folder_id, "Folder"),
            unread=self.unread,
            search=_text(self.search, "search", MAX_SEARCH_LENGTH),
        )
