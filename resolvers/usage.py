"""A schema extension that records every operation in the usage log, off the hot path.

It records the operation's name and type, how it ended and its error codes, never the query,
its variables or anything they contain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from graphql import GraphQLError, OperationType
from strawberry.extensions import SchemaExtension

from app import clock
from app.services.usage_log import UsageLogWriter, UsageRecord
from resolvers.context import Context
from resolvers.errors import error_code


class UsageLogging(SchemaExtension):
    """Appends one ``UsageRecord`` per operation of an authenticated caller."""

    def __init__(self, writer: UsageLogWriter) -> None:
        self._writer = writer

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context.context
        if not isinstance(context, Context):
            return
        result = self.execution_context.result
        errors = list(getattr(result, "errors", None) or [])
        errors += list(self.execution_context.pre_execution_errors or [])
        try:
            operation_type = self.execution_context.operation_type.value
        except RuntimeError:
            operation_type = OperationType.QUERY.value
        record_usage(
            self._writer,
            context,
            operation_type=operation_type,
            operation_name=self.execution_context.operation_name,
            errors=errors,
            duration_ms=(time.perf_counter() - started) * 1000,
        )


def record_usage(
    writer: UsageLogWriter,
    context: Context,
    *,
    operation_type: str,
    operation_name: str | None,
    errors: Sequence[GraphQLError],
    duration_ms: float,
) -> None:
    """One operation of an authenticated caller into the usage log (``UsageLogging``, and the
    direct read path, which answers without the extensions)."""
    if context.principal is None:
        return
    writer.record(
        UsageRecord(
            owner_id=context.principal.owner_id,
            token_id=context.principal.token_id,
            at=clock.now(),
            operation_name=operation_name or None,
            operation_type=operation_type,
            status="error" if errors else "ok",
            error_codes=tuple(sorted({error_code(e) for e in errors})),
            duration_ms=duration_ms,
        )
    )
