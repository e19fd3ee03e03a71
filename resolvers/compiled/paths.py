"""How many operations each execution path served: compiled plans, directly (a query text
accepted before, without the request pipeline) or inside it, or graphql-core.

One per application (``Services.execution_paths``); ``/metrics`` exports it as
``inbox_api_graphql_execution_total{path}``.
"""

from __future__ import annotations

from dataclasses import dataclass

DIRECT = "direct"
COMPILED = "compiled"
FALLBACK = "fallback"


@dataclass(slots=True)
class ExecutionPaths:
    """Counts of executed operations by path (queries and mutations; not subscriptions)."""

    direct: int = 0
    compiled: int = 0
    fallback: int = 0

    @property
    def planned(self) -> int:
        """Operations answered from a compiled plan, on either path."""
        return self.direct + self.compiled

    def counts(self) -> dict[str, int]:
        return {DIRECT: self.direct, COMPILED: self.compiled, FALLBACK: self.fallback}
