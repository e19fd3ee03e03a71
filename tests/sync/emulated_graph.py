"""Graph adapters straight over the in-process Graph emulator's test mailboxes (no OAuth flow)."""

from __future__ import annotations

import httpx

from app.models import Account
from emulators.graph_testing import EmulatedMailbox, ServedEmulator
from sync.providers.adapter import MailboxAdapter
from sync.providers.graph import GraphAdapter


class GraphFactory:
    """Graph adapters over https for the mailboxes the test made."""

    def __init__(self, served: ServedEmulator, http: httpx.AsyncClient) -> None:
        self.served, self.http = served, http
        self.mailboxes: dict[str, EmulatedMailbox] = {}

    async def __call__(self, account: Account) -> MailboxAdapter:
        mailbox = self.mailboxes[account.address]

        async def tokens(force_refresh: bool) -> str:
            return self.served.token_for(mailbox.oid) if force_refresh else mailbox.token

        return GraphAdapter(self.served.running.base_url, tokens, http=self.http)
