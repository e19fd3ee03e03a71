"""Keeps this process's token cache honest: revocations elsewhere clear it here at once."""

from __future__ import annotations

from app.auth.authenticator import TokenAuthenticator
from app.events import EventBus, OwnerTerminated, TokenRevoked


async def forget_revoked_tokens(events: EventBus, authenticator: TokenAuthenticator) -> None:
    """Run until cancelled: drop cached principals of revoked tokens and terminated owners."""
    async with events.subscribe() as queue:
        while True:
            event = await queue.get()
            if isinstance(event, TokenRevoked):
                authenticator.invalidate_token(event.token_id)
            elif isinstance(event, OwnerTerminated):
                authenticator.invalidate_owner(event.owner_id)
