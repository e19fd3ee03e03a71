"""How many operations each execution path served: compiled plans or graphql-core.

One per application (``Services.execution_paths``); ``/metrics`` exports it as
``inbox_api_graphql_execution_total{path}``.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPILED = "compiled"
FALLBACK = "fallback"


@dataclass(slots=True)
class ExecutionPaths:
    """Counts of executed operations by path (queries and mutations; not subscriptions)."""

    compiled: int = 0
    fallback: int = 0

    def counts(self) -> dict[str, int]:
        return {COMPILED: self.compiled, FALLBACK: self.fallback}
