"""Graph message items -> MessageRecords, fetching what delta does not carry.

Delta pages carry message properties (and the body when the folder's delta link selects it), but
never attachment metadata (delta does not support $expand), and a removal never says where a
message went. `message_records` fills both gaps: for content it fetches the body when missing
and the attachment list (`$select` without contentBytes) when the message has attachments or its
HTML points at cid: parts, 20 lists to a JSON batch (one request instead of 20); for ids whose
fate is unknown it asks GET /messages/{immutable id}, which finds a message wherever it was
moved and answers 404 only once it is deleted. Requests run concurrently under the client's
mailbox limit. This module decides nothing about cursors or folders.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sync.providers.errors import ProviderError
from sync.providers.graph_client import MAX_BATCH_REQUESTS, GraphClient, ItemNotFound
from sync.providers.graph_delta import attachment_path, message_path
from sync.providers.graph_records import (
    ATTACHMENT_FIELDS,
    attachment_record,
    message_content,
    message_record,
    message_select,
    references_inline_parts,
)
from sync.providers.http import gather_concurrently, gravest_error
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
    bodied = await gather_concurrently(_with_body(client, item) for item in found)
    present = [item for item in bodied if item is not None]
    gone += [item["id"] for item, full in zip(found, bodied, strict=True) if full is None]
    listed = await _attachment_lists(
        client,
        [
            str(item["id"])
            for item in present
            if item.get("hasAttachments") is True or references_inline_parts(item)
        ],
    )
    gone += [message_id for message_id, found_list in listed.items() if found_list is None]
    records = [
        message_record(
            item, content=message_content(item), attachments=listed.get(str(item["id"])) or []
        )
        for item in present
        if not (str(item["id"]) in listed and listed[str(item["id"])] is None)
    ]
    return records, gone


async def _current_item(client: GraphClient, message_id: str, select: str) -> dict[str, Any] | None:
    try:
        return await client.get_json(f"{message_path(message_id)}?$select={select}", "messages.get")
    except ItemNotFound:
        return None


async def _with_body(client: GraphClient, item: dict[str, Any]) -> dict[str, Any] | None:
    """The item with its body (None if the message is gone)."""
    if "body" in item:
        return item
    # The folder's delta link was started without bodies (M3: links keep their $select).
    try:
        body = await client.get_json(f"{message_path(item['id'])}?$select=body", "messages.get")
    except ItemNotFound:
        return None
    return {**item, "body": body.get("body")}


async def _attachment_lists(
    client: GraphClient, message_ids: list[str]
) -> dict[str, list[AttachmentRecord] | None]:
    """Each message's attachments (None for a message that is gone), listed through JSON
    batches of ``MAX_BATCH_REQUESTS``; a list longer than one page goes on with single GETs."""
    chunks = [
        message_ids[start : start + MAX_BATCH_REQUESTS]
        for start in range(0, len(message_ids), MAX_BATCH_REQUESTS)
    ]
    listed: dict[str, list[AttachmentRecord] | None] = {}
    for lists in await gather_concurrently(_attachment_batch(client, chunk) for chunk in chunks):
        listed.update(lists)
    return listed


async def _attachment_batch(
    client: GraphClient, message_ids: list[str]
) -> dict[str, list[AttachmentRecord] | None]:
    select = f"?$select={','.join(ATTACHMENT_FIELDS)}"
    answers = await client.get_json_batch(
        [f"{attachment_path(message_id)}{select}" for message_id in message_ids],
        "attachments.list",
    )
    errors = [
        a for a in answers if isinstance(a, ProviderError) and not isinstance(a, ItemNotFound)
    ]
    if errors:
        raise gravest_error(errors)
    listed: dict[str, list[AttachmentRecord] | None] = {}
    for message_id, answer in zip(message_ids, answers, strict=True):
        listed[message_id] = (
            None if isinstance(answer, ProviderError) else await _all_pages(client, answer)
        )
    return listed


async def _all_pages(client: GraphClient, body: dict[str, Any]) -> list[AttachmentRecord]:
    found: list[AttachmentRecord] = []
    while True:
        found += [attachment_record(a) for a in body.get("value") or () if isinstance(a, dict)]
        following = body.get("@odata.nextLink")
        if not isinstance(following, str):
            return found
        body = await client.get_json(client.relative(following), "attachments.list")
