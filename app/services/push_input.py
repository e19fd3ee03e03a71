"""What the push endpoints share: their error codes and the JSON reading they both need.

A push body is untrusted input from the internet: it is parsed, never logged, and a body that
is not what the provider sends is refused with ``MALFORMED_PUSH`` (an ``InvalidInput``, so the
server answers 400 and says nothing about what it read).
"""

from __future__ import annotations

import json
from typing import Any

from app.services.errors import Forbidden, InvalidInput

MALFORMED_PUSH = "MALFORMED_PUSH"
PUSH_FORBIDDEN = "PUSH_FORBIDDEN"


def malformed(message: str) -> InvalidInput:
    error = InvalidInput(message)
    error.code = MALFORMED_PUSH
    return error


def forbidden(message: str) -> Forbidden:
    error = Forbidden(message)
    error.code = PUSH_FORBIDDEN
    return error


def json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object ``raw`` holds, or ``MALFORMED_PUSH``."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise malformed("The body is not JSON.") from None
    if not isinstance(value, dict):
        raise malformed("The body is not a JSON object.")
    return value
