"""Gmail API errors in Google's JSON shape.

Every failure the Gmail emulator reports, from the mailbox state or from the HTTP layer, is a
``GmailError``; the HTTP layer turns it into::

    {"error": {"code": 404, "message": "Requested entity was not found.",
               "errors": [{"message": "...", "domain": "global", "reason": "notFound"}],
               "status": "NOT_FOUND"}}

Adapters branch on ``code`` and ``errors[0].reason``, so both follow Google's documentation.
"""

from __future__ import annotations

from typing import Any

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GmailError(Exception):
    """A Gmail API error: HTTP status, message, reason and domain as Google reports them."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON document Google sends with this error."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
                "status": _STATUS.get(self.code, "UNKNOWN"),
            }
        }

    @classmethod
    def not_found(cls) -> GmailError:
        return cls(404, "Requested entity was not found.", "notFound")

    @classmethod
    def invalid(cls, message: str) -> GmailError:
        return cls(400, message, "invalidArgument")

    @classmethod
    def unauthenticated(cls) -> GmailError:
        return cls(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            "authError",
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                'error="invalid_token"'
            },
        )

    @classmethod
    def insufficient_scope(cls) -> GmailError:
        return cls(
            403, "Request had insufficient authentication scopes.", "insufficientPermissions"
        )

    @classmethod
    def delegation_denied(cls, user_id: str) -> GmailError:
        return cls(403, f"Delegation denied for {user_id}", "forbidden")
