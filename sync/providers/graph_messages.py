"""Graph message items -> MessageRecords, fetching what delta does not carry.

Delta pages carry message properties (and the body when the folder's delta link selects it), but
never attachment metadata, and a removal never says where a message went. `message_records`
fills both gaps: for content it fetches the body when missing and the attachment list
(`$select` without contentBytes) when the message has attachments or its HTML points at cid:
parts; for ids whose fate is unknown it asks GET /messages/{immutable id}, which finds a message
wherever it was moved and answers 404 only once it is deleted. Requests run concurrently under
the client's mailbox limit. This module decides nothing about cursors or folders.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sync.providers.graph_client import GraphClient, ItemNotFound
from sync.providers.graph_delta import attachment_path, message_path
from sync.providers.graph_records import (
    ATTACHMENT_FIELDS,
    attachment_record,
    message_content,
    message_record,
    message_select,
    references_inline_parts,
)
from sync.providers.http import gather_concurrently
from sync.providers.records import AttachmentRecord, MessageRecord


async def message_records(
    client: GraphClient,
    items: list[dict[str, Any]],
    to_check: Collection[str],
    *,
    with_content: bool,
) -> tuple[list[MessageRecord], list[str]]:
    """Records for ``items`` and for the ids in ``to_check`` as Graph has them now, and the
    ids Graph no longer has (an immutable id that answers 404 is a deleted message)."""
    select = message_select(with_content=with_content)
    checked = await gather_concurrently(
        _current_item(client, message_id, select) for message_id in to_check
    )
    gone = [message_id for message_id, item in zip(to_check, checked, strict=True) if not item]
    found = [*items, *(item for item in checked if item is not None)]
    if not with_content:
        return [message_record(item) for item in found], gone
    completed = await gather_concurrently(_with_content(client, item) for item in found)
    gone += [item["id"] for item, record in zip(found, completed, strict=True) if not record]
    return [record for record in completed if record is not None], gone


async def _current_item(client: GraphClient, message_id: str, select: str) -> dict[str, Any] | None:
    try:
        return await client.get_json(f"{message_path(message_id)}?$select={select}", "messages.get")
    except ItemNotFound:
        return None


async def _with_content(client: GraphClient, item: dict[str, Any]) -> MessageRecord | None:
    message_id = str(item["id"])
    try:
        if "body" not in item:
            # The folder's delta link was started without bodies (M3: links keep their $select).
            body = await client.get_json(f"{message_path(message_id)}?$select=body", "messages.get")
            item = {**item, "body": body.get("body")}
        attachments: list[AttachmentRecord] = []
        if item.get("hasAttachments") is True or references_inline_parts(item):
            attachments = await _attachments(client, message_id)
    except ItemNotFound:
        return None
    return message_record(item, content=message_content(item), attachments=attachments)


async def _attachments(client: GraphClient, message_id: str) -> list[AttachmentRecord]:
    found: list[AttachmentRecord] = []
    link: str | None = f"{attachment_path(message_id)}?$select={','.join(ATTACHMENT_FIELDS)}"
    while link is not None:
        body = await client.get_json(link, "attachments.list")
        found += [attachment_record(a) for a in body.get("value") or () if isinstance(a, dict)]
        following = body.get("@odata.nextLink")
        link = client.relative(following) if isinstance(following, str) else None
    return found
