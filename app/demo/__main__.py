"""``python -m app.demo`` (what ``inbox-api demo`` runs)."""

from __future__ import annotations

import sys

from app.demo.main import main

if __name__ == "__main__":
    sys.exit(main())
