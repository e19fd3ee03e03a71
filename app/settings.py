"""Typed settings, read from environment variables prefixed ``INBOX_API_``.

This is the one place every setting is declared and documented (the README's configuration
table is generated from it). Secret settings are ``SecretStr``: they never show in a repr, a log
line or an error message. This module imports nothing else from the project but ``app.types``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "INBOX_API_"


class Settings(BaseSettings):
    """Every knob of Inbox API. Field descriptions are the operator documentation."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        Path("data"),
        description="Folder for the embedded SQLite database and the generated vault key file.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="postgres://user:pass@host:port/db for PostgreSQL; empty means the embedded "
        "SQLite file in the data directory.",
    )
    host: str = Field("127.0.0.1", description="Address `inbox-api serve` binds to.")
    port: int = Field(8000, description="Port `inbox-api serve` listens on.")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL clients and OAuth providers reach this server at (callback URLs).",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    embedded_worker: bool | None = Field(
        None,
        description="Run the sync worker inside `serve`. Default: on for SQLite, off for "
        "PostgreSQL (run `inbox-api worker` processes instead).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to open a WebSocket (JSON list). Empty: same origin only.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token `/metrics` requires (Prometheus `authorization` credentials). "
        "Unset: `/metrics` answers only loopback clients whose request no proxy forwarded.",
    )

    vault_keys: SecretStr | None = Field(
        None,
        description="Key ring as `id:base64key[,id:base64key...]`; the first is primary. "
        "Overrides the key file.",
    )
    vault_key_file: Path | None = Field(
        None,
        description="Key ring file (JSON, mode 0600). Default: <data_dir>/vault-keys.json, "
        "created on first run of the embedded default.",
    )
    vault_passphrase: SecretStr | None = Field(
        None,
        description="Derive the primary key from this passphrase with Argon2id (salt in the key "
        "file).",
    )

    max_query_depth: int = Field(12, description="Deepest selection nesting a query may have.")
    max_aliases: int = Field(30, description="Most aliases one operation may use.")
    max_tokens: int = Field(3000, description="Most lexical tokens one document may have.")
    max_body_bytes: int = Field(256 * 1024, description="Largest HTTP request body accepted.")
    default_page_size: int = Field(25, description="Page size when `first`/`last` is omitted.")
    max_page_size: int = Field(100, description="Largest `first`/`last` accepted.")
    fast_path: bool = Field(
        True,
        description="Run HTTP POST queries the compiled read path supports through it (same "
        "answers, checks and usage log as normal execution); off: every operation goes through "
        "graphql-core.",
    )
    sends_per_minute: int = Field(
        30,
        ge=1,
        description="Messages one account may send per minute through this server process "
        "(a token bucket: bursts up to this many, then this rate).",
    )
    max_attachments: int = Field(
        25, ge=0, description="Most attachments one outgoing message or draft may carry."
    )
    max_attachment_bytes: int = Field(
        18 * 1024 * 1024,
        ge=1,
        description="Largest attachment (decoded bytes): base64 makes it about 24 MiB, within "
        "Gmail's 25 MB message limit.",
    )
    max_message_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1,
        description="Largest outgoing message or draft as MIME, attachments encoded (Gmail's "
        "limit is 25 MB). The HTTP body limit (`INBOX_API_MAX_BODY_BYTES`) also bounds what a "
        "request can upload; attachments referenced by id are fetched from the provider.",
    )
    graph_max_message_bytes: int = Field(
        3 * 1024 * 1024,
        ge=1,
        description="Largest outgoing message or draft of a Microsoft account as MIME: it goes "
        "in one request (base64, so about 4 MB, Graph's request limit; no upload sessions).",
    )
    max_subscriptions_per_connection: int = Field(
        20, description="Most subscriptions one WebSocket connection may run at once."
    )
    max_connections_per_token: int = Field(
        100, description="Most WebSocket connections one token may hold open on one server process."
    )
    websocket_ping_seconds: float = Field(
        30.0,
        description="Seconds between the server's keep-alive pings on a WebSocket (under the "
        "usual 60 s idle timeout of proxies); the token is checked again at each.",
    )
    websocket_compression: bool = Field(
        False,
        description="Offer permessage-deflate on WebSockets. Off: events are small, and each "
        "compressed connection holds about 100 KiB of zlib state.",
    )

    usage_log_retention_days: int = Field(90, description="Days API usage rows are kept.")
    termination_grace_days: int = Field(
        7, description="Days between an owner's termination and the deletion of every row (<30)."
    )
    sync_interval_seconds: int = Field(60, description="Default poll interval of an account.")
    worker_lease_seconds: int = Field(
        120, description="How long a worker holds an account before others may take it over."
    )

    google_client_id: str | None = Field(None, description="OAuth client id of the Google app.")
    google_client_secret: SecretStr | None = Field(
        None, description="OAuth client secret of the Google app."
    )
    google_auth_uri: str = Field(
        "https://accounts.google.com/o/oauth2/auth", description="Google authorization endpoint."
    )
    google_token_uri: str = Field(
        "https://oauth2.googleapis.com/token", description="Google token endpoint."
    )
    google_revoke_uri: str = Field(
        "https://oauth2.googleapis.com/revoke", description="Google revocation endpoint."
    )
    gmail_api_base: str = Field(
        "https://gmail.googleapis.com", description="Base URL of the Gmail API."
    )
    microsoft_client_id: str | None = Field(None, description="Application id of the Entra app.")
    microsoft_client_secret: SecretStr | None = Field(
        None, description="Client secret of the Entra app."
    )
    microsoft_authority: str = Field(
        "https://login.microsoftonline.com/common", description="Microsoft identity authority."
    )
    microsoft_ca_file: Path | None = Field(
        None,
        description="Extra CA bundle for the identity platform and Graph (tests, private clouds).",
    )
    google_ca_file: Path | None = Field(
        None,
        description="Extra CA bundle for Google's OAuth endpoints and the Gmail API (tests "
        "against an emulator). Google's endpoints must be https either way.",
    )
    oauth_return_origins: list[str] = Field(
        default_factory=list,
        description="Origins a connect mutation's `returnUrl` may point at (JSON list, e.g. "
        '`["https://app.example.com"]`). Empty: no `returnUrl` is accepted and the OAuth '
        "callback shows its own page.",
    )
    graph_api_base: str = Field(
        "https://graph.microsoft.com", description="Base URL of Microsoft Graph."
    )
    gmail_push_topic: str | None = Field(
        None,
        description="Cloud Pub/Sub topic (`projects/<project>/topics/<name>`) each Gmail account "
        "is watched on (`users.watch`, renewed daily). Unset: no watch, Gmail accounts are polled.",
    )
    gmail_push_token: SecretStr | None = Field(
        None,
        description="Verification token of the Pub/Sub push subscription: its endpoint is "
        "`<public_url>/push/gmail?verification=<this>`. Unset: every Gmail push is refused (403).",
    )
    graph_change_notifications: bool = Field(
        False,
        description="Subscribe to Graph change notifications for each Microsoft account, "
        "delivered to `<public_url>/push/graph` (Graph needs an https URL it can reach). Off: "
        "Microsoft accounts are polled.",
    )
    imap_allow_plaintext_loopback: bool = Field(
        False,
        description="Let `connectImap` use security PLAIN (no TLS) for an IMAP or SMTP server on "
        "a loopback address (a local bridge or test server). Other hosts always need TLS or "
        "STARTTLS.",
    )
    imap_ca_file: Path | None = Field(
        None,
        description="Extra CA bundle trusted for IMAP and SMTP servers' certificates (private "
        "CAs, tests); the system's CAs are trusted either way.",
    )
    imap_connect_timeout_seconds: float = Field(
        15.0,
        description="How long `connectImap`, the IMAP sync and SMTP sending wait for each step "
        "(DNS, connect, TLS, login, a response).",
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the configured one or the embedded SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite://{(self.data_dir / 'inbox-api.sqlite3').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith(("postgres://", "postgresql://"))

    @property
    def runs_embedded_worker(self) -> bool:
        if self.embedded_worker is not None:
            return self.embedded_worker
        return not self.is_postgres

    @property
    def effective_vault_key_file(self) -> Path:
        return self.vault_key_file or self.data_dir / "vault-keys.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
