"""The README's configuration table is the one generated from the settings."""

from __future__ import annotations

from pathlib import Path

from app.settings_table import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_configuration_table_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- settings-table:start -->\n") + len("<!-- settings-table:start -->\n")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end] == settings_table(), "run: python -m app.settings_table"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "scripts/serve" in text
    assert "scripts/test" in text
