"""Tortoise ORM models: the owners, their tokens and accounts, and the per-account cache.

Read paths that frontends hit every second use plain rows (``.values()`` or raw SQL) rather
than model objects; the models still define every table, index and migration. Nothing here
decrypts, calls a provider or knows about GraphQL.

Secrets: ``Credential`` holds only vault ciphertext and its key id; ``ApiToken`` holds only the
SHA-256 digest of a token. No column anywhere holds a secret in clear.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.types import (
    AccountStatus,
    ChangeKind,
    CredentialKind,
    ExportStatus,
    FolderRole,
    Provider,
    SyncPhase,
)


class Owner(Model):
    """A customer of Inbox API. Termination sets terminated_at, the purge deletes the rest."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=320)
    created_at = fields.DatetimeField(auto_now_add=True)
    terminated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "owners"


class ApiToken(Model):
    """An API token: SHA-256 digest only, its scopes, and its life cycle."""

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "models.Owner", related_name="tokens", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=200)
    digest = fields.CharField(max_length=64, unique=True)
    display_prefix = fields.CharField(max_length=32)
    actions: Any = fields.JSONField(default=list)
    account_ids: Any = fields.JSONField(null=True, description="null: every account of the owner")
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_tokens"


class Account(Model):
    """One connected mailbox, with its cache policy."""

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "models.Owner", related_name="accounts", on_delete=fields.CASCADE
    )
    owner_id: int  # the column behind ``owner``, set by Tortoise
    provider = fields.CharEnumField(Provider, max_length=16)
    address = fields.CharField(max_length=320)
    display_name = fields.CharField(max_length=200, default="")
    status = fields.CharEnumField(AccountStatus, max_length=32, default=AccountStatus.ACTIVE)
    status_reason = fields.CharField(max_length=64, null=True)
    retention_days = fields.IntField(null=True, description="null: keep cached mail forever")
    cache_bodies = fields.BooleanField(default=True)
    fetch_uncached_bodies = fields.BooleanField(default=True)
    sync_interval_seconds = fields.IntField(null=True)
    provider_settings: Any = fields.JSONField(default=dict, description="non-secret: hosts, ports")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "accounts"
        unique_together = (("owner", "provider", "address"),)


class Credential(Model):
    """A sealed secret of an account: vault ciphertext and the id of the key that wraps it."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="credentials", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(CredentialKind, max_length=32)
    ciphertext = fields.BinaryField()
    key_id = fields.CharField(max_length=64, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    rotated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "credentials"
        unique_together = (("account", "kind"),)


class SendKey(Model):
    """An idempotency key of a send from one account, with its outcome: a retried send with
    the same key answers the stored result and never sends twice (``app.services.send``)."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="send_keys", on_delete=fields.CASCADE
    )
    account_id: int
    key = fields.CharField(max_length=200)
    state = fields.CharField(max_length=16, description="sending, sent or unknown")
    message_id_header = fields.TextField()
    provider_message_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "send_keys"
        unique_together = (("account", "key"),)


class PendingAuthorization(Model):
    """An OAuth consent an owner started and the provider has not answered yet (10 minutes).

    Found by the SHA-256 of its ``state``: the state itself travels through the browser and is
    never stored. The flow's secrets (PKCE verifier, nonce) are vault ciphertext. Single use: the
    callback deletes the row it completes.
    """

    id = fields.BigIntField(primary_key=True)
    state_digest = fields.CharField(max_length=64, unique=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "models.Owner", related_name="pending_authorizations", on_delete=fields.CASCADE
    )
    owner_id: int
    token_id = fields.BigIntField(null=True, description="the API token that started it")
    provider = fields.CharEnumField(Provider, max_length=16)
    sealed_flow = fields.BinaryField()
    return_url = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "oauth_states"


class SyncState(Model):
    """Where the sync of an account stands, its cursor, and the worker lease on it."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="sync_state", on_delete=fields.CASCADE, primary_key=True
    )
    phase = fields.CharEnumField(SyncPhase, max_length=16, default=SyncPhase.PENDING)
    cursor = fields.TextField(null=True, description="provider cursor: Gmail historyId, ...")
    full_sync_page_token = fields.TextField(null=True)
    next_run_at = fields.DatetimeField(null=True, db_index=True)
    last_success_at = fields.DatetimeField(null=True)
    last_error_code = fields.CharField(max_length=64, null=True)
    last_error_at = fields.DatetimeField(null=True)
    consecutive_failures = fields.IntField(default=0)
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sync_states"


class Folder(Model):
    """A folder (Graph, IMAP) or label (Gmail) of an account."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="folders", on_delete=fields.CASCADE
    )
    provider_id = fields.CharField(max_length=255)
    name = fields.CharField(max_length=500)
    role = fields.CharEnumField(FolderRole, max_length=16, default=FolderRole.CUSTOM)
    parent_provider_id = fields.CharField(max_length=255, null=True)
    total_count = fields.IntField(default=0)
    unread_count = fields.IntField(default=0)
    sync_cursor = fields.TextField(null=True, description="per-folder delta link / IMAP state")

    class Meta:
        table = "folders"
        unique_together = (("account", "provider_id"),)


class Thread(Model):
    """A conversation, as the provider groups it (Gmail threadId, Graph conversationId)."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="threads", on_delete=fields.CASCADE
    )
    provider_id = fields.CharField(max_length=255)
    subject = fields.TextField(default="")
    snippet = fields.TextField(default="")
    participants: Any = fields.JSONField(default=list)
    last_message_at = fields.DatetimeField(null=True)
    message_count = fields.IntField(default=0)
    unread_count = fields.IntField(default=0)

    class Meta:
        table = "threads"
        unique_together = (("account", "provider_id"),)
        indexes = (Index(fields=("account_id", "last_message_at", "id")),)


class Message(Model):
    """The envelope and flags of a cached message. Bodies live in MessageBody."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="messages", on_delete=fields.CASCADE
    )
    thread: fields.ForeignKeyNullableRelation[Thread] = fields.ForeignKeyField(
        "models.Thread", related_name="messages", on_delete=fields.SET_NULL, null=True
    )
    provider_id = fields.CharField(max_length=255)
    message_id_header = fields.TextField(null=True)
    in_reply_to = fields.TextField(null=True)
    references: Any = fields.JSONField(default=list)
    subject = fields.TextField(default="")
    from_addresses: Any = fields.JSONField(default=list)
    to_addresses: Any = fields.JSONField(default=list)
    cc_addresses: Any = fields.JSONField(default=list)
    bcc_addresses: Any = fields.JSONField(default=list)
    reply_to_addresses: Any = fields.JSONField(default=list)
    date = fields.DatetimeField()
    snippet = fields.TextField(default="")
    size = fields.IntField(default=0)
    has_attachments = fields.BooleanField(default=False)
    unread = fields.BooleanField(default=False)
    starred = fields.BooleanField(default=False)
    draft = fields.BooleanField(default=False)
    label_ids: Any = fields.JSONField(default=list, description="provider ids of folders/labels")
    parse_error = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "messages"
        unique_together = (("account", "provider_id"),)
        indexes = (
            Index(fields=("account_id", "date", "id")),
            Index(fields=("thread_id", "date", "id")),
        )


class MessageLabel(Model):
    """Membership of a message in a folder or label, for filtering by folder with an index."""

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="label_links", on_delete=fields.CASCADE
    )
    folder: fields.ForeignKeyRelation[Folder] = fields.ForeignKeyField(
        "models.Folder", related_name="message_links", on_delete=fields.CASCADE
    )

    class Meta:
        table = "message_labels"
        unique_together = (("folder", "message"),)


class MessageBody(Model):
    """Cached content of a message: bodies, headers and raw MIME (absent when not cached)."""

    message: fields.OneToOneRelation[Message] = fields.OneToOneField(
        "models.Message", related_name="body", on_delete=fields.CASCADE, primary_key=True
    )
    text_body = fields.TextField(null=True)
    html_body = fields.TextField(null=True)
    headers: Any = fields.JSONField(default=list)
    raw_mime = fields.BinaryField(null=True)

    class Meta:
        table = "message_bodies"


class Attachment(Model):
    """Metadata of an attachment. Its bytes come from the provider on download."""

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="attachments", on_delete=fields.CASCADE
    )
    provider_attachment_id = fields.TextField(null=True)
    part_id = fields.CharField(max_length=64, null=True)
    filename = fields.TextField(default="")
    content_type = fields.CharField(max_length=255, default="application/octet-stream")
    size = fields.IntField(default=0)
    content_id = fields.CharField(max_length=255, null=True)
    inline = fields.BooleanField(default=False)

    class Meta:
        table = "attachments"


class ChangeLogEntry(Model):
    """One change of an account cache. The id is the monotonic cursor of subscriptions."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="changes", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(ChangeKind, max_length=32)
    message_id = fields.BigIntField(
        null=True, description="cache id, no FK so deletions stay visible"
    )
    provider_id = fields.CharField(max_length=255, null=True)
    detail: Any = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "change_log"
        indexes = (Index(fields=("account_id", "id")),)


class UsageLogEntry(Model):
    """One API request: who, what operation, how it ended. Never variables or secrets."""

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "models.Owner", related_name="usage", on_delete=fields.CASCADE
    )
    token_id = fields.BigIntField(null=True)
    at = fields.DatetimeField(db_index=True)
    operation_name = fields.CharField(max_length=200, null=True)
    operation_type = fields.CharField(max_length=16)
    status = fields.CharField(max_length=16)
    error_codes: Any = fields.JSONField(default=list)
    duration_ms = fields.FloatField()

    class Meta:
        table = "usage_log"
        indexes = (Index(fields=("owner_id", "at")),)


class ExportJob(Model):
    """An owner's data export: a zip in the data directory, named by a random ``archive_id``,
    downloadable by the owner until ``expires_at``; then the purge deletes the file and the row.
    """

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "models.Owner", related_name="exports", on_delete=fields.CASCADE
    )
    owner_id: int
    archive_id = fields.CharField(max_length=64, unique=True)
    status = fields.CharEnumField(ExportStatus, max_length=16, default=ExportStatus.PENDING)
    account_ids: Any = fields.JSONField(null=True, description="null: every account of the owner")
    messages_total = fields.IntField(default=0)
    messages_done = fields.IntField(default=0)
    size_bytes = fields.BigIntField(null=True)
    error_code = fields.CharField(max_length=64, null=True)
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "export_jobs"


class PushRegistration(Model):
    """How push from the provider of an account stands: a Gmail ``users.watch`` or a Graph
    change-notification subscription, kept current by the sync worker (``sync.push``).

    ``external_id`` is Graph's subscription id (NULL for Gmail, whose watch has none, and while
    nothing is registered). Graph's ``clientState`` is stored only as its SHA-256 digest: the
    secret itself travels to Graph once and comes back in each notification.
    """

    id = fields.BigIntField(primary_key=True)
    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="push_registration", on_delete=fields.CASCADE
    )
    account_id: int
    provider = fields.CharEnumField(Provider, max_length=16)
    external_id = fields.CharField(max_length=255, null=True, db_index=True)
    client_state_digest = fields.CharField(max_length=64, null=True)
    expires_at = fields.DatetimeField(
        null=True, description="when the provider ends it, null for never"
    )
    renew_after = fields.DatetimeField(description="when the worker registers or renews again")
    last_error_code = fields.CharField(max_length=64, null=True)
    rejected_notifications = fields.IntField(
        default=0, description="notifications with a wrong clientState, ignored"
    )

    class Meta:
        table = "push_registrations"
