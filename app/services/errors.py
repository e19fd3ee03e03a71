"""Expected failures of the use cases, each with a stable code the API shows as is.

ServiceError (code)
+-- NotFound          the object does not exist, or belongs to someone the caller may not see
+-- Forbidden         the caller lacks a scope (``missing`` names it)
+-- InvalidInput      the input is wrong; ``field`` names it when one field is to blame
+-- Conflict          the object exists already, or its state forbids the change
"""

from __future__ import annotations


class ServiceError(Exception):
    """An expected failure; its message is safe to show the caller."""

    code = "SERVICE_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    code = "NOT_FOUND"


class Forbidden(ServiceError):
    code = "FORBIDDEN"

    def __init__(self, message: str, *, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


class InvalidInput(ServiceError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(ServiceError):
    code = "CONFLICT"
