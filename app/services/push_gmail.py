"""Gmail push notifications as Cloud Pub/Sub delivers them: authenticate, decode, make due.

    POST <public_url>/push/gmail?verification=<gmail_push_token>
    {"message": {"data": base64({"emailAddress": ..., "historyId": ...}), "messageId": ...,
                 "publishTime": ..., "attributes": {...}},
     "subscription": "projects/<project>/subscriptions/<name>"}

Pub/Sub pushes without any credential of its own here: the operator puts a secret verification
token in the push endpoint's URL (as Google documents for push endpoints; the parameter is
``verification``, since the server refuses any ``token`` parameter as a misplaced API token,
and the server's access log never shows it: ``app.server.push``), and a push without it (or
with another) is refused (``Forbidden``, code ``PUSH_FORBIDDEN``) before its body is
read. ``parse_gmail_push`` turns the envelope into a ``GmailPush`` or refuses it
(``InvalidInput``, code ``MALFORMED_PUSH``). ``make_gmail_accounts_due`` then finds every active
Gmail account with that address (several owners may connect one mailbox) and asks for a sync
(``request_sync_now``) where the push's historyId is past the stored cursor: a notification is
a hint that changes exist, never the changes themselves, and a replayed or stale one costs
nothing.

Nothing from a push body is ever logged or echoed back; errors carry codes only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from app.models import Account, SyncState
from app.services.push_input import forbidden, json_object, malformed
from app.services.sync_control import request_sync_now
from app.settings import Settings
from app.types import AccountId, AccountStatus, Provider

GMAIL_PUSH_PATH = "/push/gmail"
VERIFICATION_PARAMETER = "verification"
MAX_ADDRESS_LENGTH = 320


@dataclass(frozen=True, slots=True)
class GmailPush:
    """What one push says: this mailbox has changes up to this history id."""

    email_address: str
    history_id: int


def check_gmail_push_token(settings: Settings, token: str | None) -> None:
    """Refuse a push that lacks the configured verification token (constant-time compare)."""
    expected = settings.gmail_push_token
    if (
        expected is None
        or not expected.get_secret_value()
        or token is None
        or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
    ):
        raise forbidden("This push endpoint needs its verification token.")


def parse_gmail_push(body: bytes) -> GmailPush:
    """The notification inside a Pub/Sub push envelope; ``InvalidInput`` for anything else."""
    envelope = json_object(body)
    message = envelope.get("message")
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str):
        raise malformed("The push carries no message data.")
    try:
        notification = json_object(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise malformed("The message data is not base64.") from None
    address, history_id = notification.get("emailAddress"), notification.get("historyId")
    if not isinstance(address, str) or not 0 < len(address) <= MAX_ADDRESS_LENGTH:
        raise malformed("The notification has no emailAddress.")
    if isinstance(history_id, int) and not isinstance(history_id, bool):
        history_id = str(history_id)
    if not isinstance(history_id, str) or not history_id.isdigit() or len(history_id) > 20:
        raise malformed("The notification has no historyId.")
    return GmailPush(address, int(history_id))


async def make_gmail_accounts_due(push: GmailPush) -> list[AccountId]:
    """Request a sync of each active Gmail account of that address whose cursor is behind."""
    accounts: list[int] = [
        row["id"]
        for row in await Account.filter(
            provider=Provider.GMAIL,
            status=AccountStatus.ACTIVE,
            address__iexact=push.email_address,
        ).values("id")
    ]
    cursors = {
        row["account_id"]: row["cursor"]
        for row in await SyncState.filter(account_id__in=accounts).values("account_id", "cursor")
    }
    made_due = []
    for account_id in accounts:
        cursor = cursors.get(account_id)
        if cursor is not None and cursor.isdigit() and int(cursor) >= push.history_id:
            continue  # already synced past this change
        if await request_sync_now(AccountId(account_id)) is not None:
            made_due.append(AccountId(account_id))
    return made_due
