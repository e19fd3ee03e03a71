"""The README's configuration table, generated from ``app.settings.Settings``.

``python -m app.settings_table`` prints it; a test fails when the README's copy is stale.
"""

from __future__ import annotations

from app.settings import ENV_PREFIX, Settings


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default is None else f"`{default}`"
        if name.endswith(("secret", "keys", "passphrase")) or name == "database_url":
            shown = shown or "(unset)"
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
