"""The documentation stays true: the scope table matches the schema, and every relative link
of docs/ and the README leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.scope_table import DOCS_PAGE, scope_table

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_scope_table_is_the_one_the_schema_gives() -> None:
    assert DOCS_PAGE.read_text(encoding="utf-8") == scope_table(), (
        "docs/scopes.md is stale: run python -m app.scope_table --write"
    )


def test_every_scope_and_root_field_is_in_the_table() -> None:
    page = DOCS_PAGE.read_text(encoding="utf-8")
    for field in ("messages", "createToken", "connectGmail", "messageEvents", "viewer"):
        assert f"| `{field}` |" in page
    assert "| `messages` | `messages:metadata` |" in page
    assert "| `Message` | `textBody` | `messages:content` |" in page


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page: Path) -> None:
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT):
            continue  # beside the repository (../shared): not ours to check
        assert path.exists(), f"{page.name}: {target}"


def test_the_readme_points_to_the_docs_and_the_benchmarks() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/)" in readme or "](docs/README.md)" in readme
    assert "](docs/benchmarks.md)" in readme
