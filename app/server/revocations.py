"""Keeps this process honest about revocations made anywhere: the token cache is cleared and
every open WebSocket of a revoked token or a terminated owner is closed, within the time an
event takes to arrive (about a millisecond over LISTEN/NOTIFY)."""

from __future__ import annotations

from app.auth.authenticator import TokenAuthenticator
from app.events import EventBus, OwnerTerminated, TokenRevoked
from app.server.connection_limits import ConnectionRegistry


async def forget_revoked_tokens(
    events: EventBus,
    authenticator: TokenAuthenticator,
    connections: ConnectionRegistry | None = None,
) -> None:
    """Run until cancelled: drop cached principals of revoked tokens and terminated owners,
    and close their connections (``connections``: this process's open WebSockets)."""
    async with events.subscribe() as queue:
        while True:
            event = await queue.get()
            if isinstance(event, TokenRevoked):
                authenticator.invalidate_token(event.token_id)
                if connections is not None:
                    await connections.close_token(event.token_id, "Token revoked")
            elif isinstance(event, OwnerTerminated):
                authenticator.invalidate_owner(event.owner_id)
                if connections is not None:
                    await connections.close_owner(event.owner_id, "Owner terminated")
