"""Following Microsoft Graph delta queries: pages, whole rounds, and their starting URLs.

A round (M2) starts at a deltaLink (or at the initial URL) and follows every @odata.nextLink
until a page carries @odata.deltaLink; an empty page can still carry a nextLink. Items that
carry "@removed" left the folder (deleted or moved out, M4); every other item is the latest full
state of a message or folder. A dead token (410 and friends, M5) restarts the round from its
initial URL, once. This module only reads: it must never decide what a removal means (the
adapter does, `graph_changes`), and never stores anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sync.providers.errors import TransientError
from sync.providers.graph_client import API_ROOT, DeltaGone, GraphClient
from sync.providers.graph_records import FOLDER_FIELDS, message_select

FOLDER_TREE_DELTA_PATH = f"{API_ROOT}/mailFolders/delta"
FOLDER_TREE_DELTA = f"{FOLDER_TREE_DELTA_PATH}?$select={','.join(FOLDER_FIELDS)}"
ID_LISTING_PAGE = 1000
"""Graph's largest $top for messages: listing ids is cheap, so ask for as many as allowed."""


def folder_path(folder_id: str) -> str:
    return f"{API_ROOT}/mailFolders/{quote(folder_id, safe='')}"


def message_path(message_id: str) -> str:
    return f"{API_ROOT}/messages/{quote(message_id, safe='')}"


def attachment_path(message_id: str, attachment_id: str | None = None) -> str:
    """A message's attachments, or one of them."""
    collection = f"{message_path(message_id)}/attachments"
    return collection if attachment_id is None else f"{collection}/{quote(attachment_id, safe='')}"


def message_delta_start(folder_id: str, *, with_content: bool) -> str:
    """The first URL of a folder's message delta; its options ride along in every later link."""
    select = message_select(with_content=with_content)
    return f"{folder_path(folder_id)}/messages/delta?$select={select}"


@dataclass
class DeltaPage:
    present: list[dict[str, Any]]
    removed: list[str]
    next_link: str | None
    """Relative; None when this page ends the round."""
    delta_link: str | None
    """Relative; set on the last page of a round only."""


@dataclass
class DeltaRound:
    present: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> latest state; a later page wins (Graph may repeat an item within a round)."""
    removed: set[str] = field(default_factory=set)
    delta_link: str = ""
    restarted: bool = False
    """The stored link was dead and the round ran from the initial URL."""


async def delta_page(client: GraphClient, link: str) -> DeltaPage:
    what = "mailFolders.delta" if link.startswith(FOLDER_TREE_DELTA_PATH) else "messages.delta"
    body = await client.get_json(link, what)
    present: list[dict[str, Any]] = []
    removed: list[str] = []
    for item in body.get("value") or ():
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        if "@removed" in item:
            removed.append(item["id"])
        else:
            present.append(item)
    next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
    if isinstance(next_link, str) == isinstance(delta_link, str):
        raise TransientError("Graph delta page without exactly one of nextLink and deltaLink")
    return DeltaPage(
        present,
        removed,
        client.relative(next_link) if isinstance(next_link, str) else None,
        client.relative(delta_link) if isinstance(delta_link, str) else None,
    )


async def delta_round(client: GraphClient, link: str | None, start: str) -> DeltaRound:
    """Follow ``link`` (or ``start`` when None) to the end of the round.

    A dead token anywhere in the round restarts it from ``start`` once; the items already read
    are dropped, since the fresh round returns every current item again.
    """
    try:
        return await _follow(client, link or start)
    except DeltaGone:
        try:
            fresh = await _follow(client, start)
        except DeltaGone as again:
            raise TransientError("Graph refused a fresh delta round") from again
    fresh.restarted = True
    return fresh


async def folder_message_ids(client: GraphClient, folder_id: str) -> frozenset[str]:
    """The ids of every message now in a folder (a plain listing, not delta)."""
    ids: set[str] = set()
    link: str | None = f"{folder_path(folder_id)}/messages?$select=id&$top={ID_LISTING_PAGE}"
    while link is not None:
        body = await client.get_json(link, "messages.list")
        ids.update(str(item["id"]) for item in body.get("value") or () if "id" in item)
        following = body.get("@odata.nextLink")
        link = client.relative(following) if isinstance(following, str) else None
    return frozenset(ids)


async def _follow(client: GraphClient, link: str) -> DeltaRound:
    round_ = DeltaRound()
    following: str | None = link
    while following is not None:
        page = await delta_page(client, following)
        for item in page.present:
            round_.present[item["id"]] = item
        round_.removed.update(page.removed)
        following = page.next_link
        if page.delta_link is not None:
            round_.delta_link = page.delta_link
    return round_
