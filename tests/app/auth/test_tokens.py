"""The token format: prefix, entropy, checksum; only the digest is stored."""

from __future__ import annotations

import hashlib

from app.auth.tokens import (
    TOKEN_LENGTH,
    TOKEN_PREFIX,
    display_prefix,
    generate_token,
    is_well_formed,
    token_digest,
)
from app.models import ApiToken
from tests.factories import make_owner


def test_generated_tokens_are_well_formed_and_distinct() -> None:
    tokens = {generate_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith(TOKEN_PREFIX)
        assert len(token) == TOKEN_LENGTH
        assert is_well_formed(token)


def test_checksum_catches_any_single_change() -> None:
    token = generate_token()
    for index in range(len(TOKEN_PREFIX), len(token)):
        replacement = "A" if token[index] != "A" else "B"
        assert not is_well_formed(token[:index] + replacement + token[index + 1 :])


def test_malformed_tokens() -> None:
    for bad in ("", "iapi_", "ghp_" + "a" * 36, generate_token() + "x", "iapi_" + "!" * 36):
        assert not is_well_formed(bad)


def test_display_prefix_is_short_and_not_the_secret() -> None:
    token = generate_token()
    assert token.startswith(display_prefix(token))
    assert len(display_prefix(token)) <= 12


async def test_only_the_digest_is_stored(db: object) -> None:
    made = await make_owner()
    row = await ApiToken.get(owner_id=made.owner.id)
    assert row.digest == hashlib.sha256(made.token.encode()).hexdigest() == token_digest(made.token)
    values = await ApiToken.filter(id=row.id).values()
    assert made.token not in repr(values)
