"""Settings: one prefix, typed, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings


def test_secrets_never_show_in_repr() -> None:
    settings = Settings(
        database_url="postgres://u:db-canary-pw@h/db",  # type: ignore[arg-type]
        vault_keys="k1:c2VjcmV0LWNhbmFyeQ==",  # type: ignore[arg-type]
        google_client_secret="google-canary",  # type: ignore[arg-type]
    )
    text = repr(settings) + str(settings)
    for canary in ("db-canary-pw", "c2VjcmV0LWNhbmFyeQ", "google-canary"):
        assert canary not in text


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INBOX_API_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INBOX_API_PORT", "9123")
    settings = Settings()
    assert settings.port == 9123
    assert settings.effective_database_url == f"sqlite://{tmp_path.resolve()}/inbox-api.sqlite3"
    assert not settings.is_postgres
    assert settings.runs_embedded_worker


def test_postgres_url_switches_backend() -> None:
    settings = Settings(database_url="postgresql://u@h/db")  # type: ignore[arg-type]
    assert settings.is_postgres
    assert not settings.runs_embedded_worker
