"""Gmail push (PROVIDERS.md G10): ``users.watch`` and ``users.stop`` for one mailbox.

    watch(client, topic)  POST /users/me/watch {topicName, labelIdsFilterAction?}
                          -> WatchGrant(history_id, expires_at)   (Gmail: about 7 days)
    stop(client)          POST /users/me/stop -> 204

Gmail then publishes ``{emailAddress, historyId}`` to the Pub/Sub topic for changes in the
mailbox (at most about one per second per user, sometimes none at all: the fallback poll stays).
The calls go through the adapter's own ``GmailClient`` (its token source, quota slots and typed
errors); nothing here touches the database or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sync.providers.errors import PermanentError
from sync.providers.gmail import GmailAdapter
from sync.providers.gmail_client import GmailClient


@dataclass(frozen=True, slots=True)
class WatchGrant:
    """What ``users.watch`` answered: the mailbox's history id now and the watch's expiry."""

    history_id: int
    expires_at: datetime


def gmail_client_of(adapter: GmailAdapter) -> GmailClient:
    """The client of a Gmail adapter: watch and stop share its token source and quota slots."""
    return adapter._client


async def watch(client: GmailClient, topic_name: str) -> WatchGrant:
    """Start (or renew: a second watch replaces the first) push for every change in the mailbox."""
    answer = await client.send("POST", "/watch", "watch", {"topicName": topic_name}) or {}
    history_id, expiration = str(answer.get("historyId")), str(answer.get("expiration"))
    if not (history_id.isdigit() and expiration.isdigit()):
        raise PermanentError("watch: Gmail sent no historyId or expiration", code="MALFORMED")
    return WatchGrant(int(history_id), datetime.fromtimestamp(int(expiration) / 1000, UTC))


async def stop(client: GmailClient) -> None:
    """End push for the mailbox (any watch of this client's app)."""
    await client.send("POST", "/stop", "stop")
