import subprocess
import sys
from pathlib import Path

import vault

REPOSITORY = Path(__file__).resolve().parents[2]


def test_every_public_name_is_exported() -> None:
    for name in vault.__all__:
        assert getattr(vault, name) is not None
    assert sorted(vault.__all__) == vault.__all__


def test_importing_the_vault_loads_no_project_db_or_web_module() -> None:
    # A fresh interpreter, so modules other tests imported do not count.
    forbidden = [
        "app", "resolvers", "sync", "emulators", "tortoise", "starlette", "strawberry",
        "asyncpg", "aiosqlite", "httpx", "requests", "uvicorn",
    ]  # fmt: skip
    probe = (
        "import sys, vault\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r}))"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
