"""Type aliases and small enums shared by every layer.

This module imports nothing from the project, so any layer may import it (like starlette/types.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

OwnerId = NewType("OwnerId", int)
AccountId = NewType("AccountId", int)
TokenId = NewType("TokenId", int)
MessageId = NewType("MessageId", int)
ThreadId = NewType("ThreadId", int)
FolderId = NewType("FolderId", int)


class Action(StrEnum):
    """What a token may do. A scope is a set of actions times a set of accounts."""

    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_MANAGE = "accounts:manage"
    MESSAGES_METADATA = "messages:metadata"
    MESSAGES_CONTENT = "messages:content"
    MESSAGES_MODIFY = "messages:modify"
    MESSAGES_SEND = "messages:send"
    MESSAGES_DRAFTS = "messages:drafts"
    OWNER = "owner"


ALL_ACTIONS: frozenset[Action] = frozenset(Action)


class Provider(StrEnum):
    """Where a connected mailbox lives."""

    GMAIL = "gmail"
    GRAPH = "graph"
    IMAP = "imap"


class AccountStatus(StrEnum):
    """Health of a connected account as the owner sees it."""

    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    NEEDS_ATTENTION = "needs_attention"
    DISABLED = "disabled"


class SyncPhase(StrEnum):
    """Where an account's sync stands."""

    PENDING = "pending"
    INITIAL = "initial"
    INCREMENTAL = "incremental"
    BACKOFF = "backoff"
    STOPPED = "stopped"


class FolderRole(StrEnum):
    """The role of a folder or label, independent of the provider's name for it."""

    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    TRASH = "trash"
    SPAM = "spam"
    ARCHIVE = "archive"
    STARRED = "starred"
    IMPORTANT = "important"
    CATEGORY = "category"
    CUSTOM = "custom"


class CredentialKind(StrEnum):
    """What a stored credential is for; part of the vault's associated data."""

    OAUTH_REFRESH_TOKEN = "oauth_refresh_token"  # noqa: S105 (a kind name, not a secret)
    OAUTH_ACCESS_TOKEN = "oauth_access_token"  # noqa: S105 (a kind name, not a secret)
    IMAP_PASSWORD = "imap_password"  # noqa: S105 (a kind name, not a secret)
    SMTP_PASSWORD = "smtp_password"  # noqa: S105 (a kind name, not a secret)


class ExportStatus(StrEnum):
    """Where an owner's data export stands. EXPIRED is never stored: it is a READY export past
    its expiry, shown until the purge removes it."""

    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"


class ChangeKind(StrEnum):
    """What one row of the per-account change log records."""

    MESSAGE_ADDED = "message_added"
    MESSAGE_CHANGED = "message_changed"
    MESSAGE_DELETED = "message_deleted"
    ACCOUNT_STATUS = "account_status"
