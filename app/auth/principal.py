"""Who is calling: the principal derived from a token, and what it may touch."""

from __future__ import annotations

from dataclasses import dataclass

from app.types import AccountId, Action, OwnerId, TokenId


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated token: its owner, its actions, and its accounts (None: all of them)."""

    owner_id: OwnerId
    token_id: TokenId
    actions: frozenset[Action]
    account_ids: frozenset[AccountId] | None

    def can(self, action: Action) -> bool:
        return action in self.actions

    def may_touch(self, account_id: int) -> bool:
        return self.account_ids is None or account_id in self.account_ids

    def covers(self, actions: frozenset[Action], account_ids: frozenset[AccountId] | None) -> bool:
        """Whether a token with these scopes would grant nothing this principal lacks."""
        if not actions <= self.actions:
            return False
        if self.account_ids is None:
            return True
        return account_ids is not None and account_ids <= self.account_ids
