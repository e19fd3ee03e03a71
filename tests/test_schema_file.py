"""schema.graphql is the exported schema.

Regenerate it with `inbox-api schema --output schema.graphql`.
"""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings
from resolvers.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_is_current() -> None:
    exported = build_schema(Settings()).as_str() + "\n"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == exported, (
        "schema.graphql is stale: run `inbox-api schema --output schema.graphql`"
    )


def test_every_scoped_field_shows_its_scope() -> None:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    assert "directive @requiresScope(scope: String!) on FIELD_DEFINITION" in text
    assert '@requiresScope(scope: "owner")' in text
