"""Typed errors of the provider adapters; the sync engine decides what each one means.

    ProviderError
    +-- AuthExpired        access token rejected even after one refresh (retry later)
    +-- AuthRevoked        the grant is gone (invalid_grant, wrong password): needs re-authorisation
    +-- CursorExpired      the stored cursor is dead (Gmail 404, Graph 410): one full resync
    +-- RateLimited        quota or throttling; ``retry_after`` seconds when the provider said so
    +-- TransientError     5xx, timeouts, connection resets: back off and retry
    +-- PermanentError     anything else the provider refused; ``code`` says what

Messages carry a short code and never a token, password or provider response body.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every adapter error. ``code`` is stable and safe to show an owner."""

    code = "PROVIDER_ERROR"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code


class AuthExpired(ProviderError):
    code = "AUTH_EXPIRED"


class AuthRevoked(ProviderError):
    code = "AUTH_REVOKED"


class CursorExpired(ProviderError):
    code = "CURSOR_EXPIRED"


class RateLimited(ProviderError):
    code = "RATE_LIMITED"

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(ProviderError):
    code = "TRANSIENT"


class PermanentError(ProviderError):
    code = "PERMANENT"
