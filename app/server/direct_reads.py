"""POST /graphql for queries the schema accepted before: answered from their plans directly.

``DirectReads.answer`` takes a JSON POST whose query text the schema's pipeline parsed and
validated before, authenticates it as the view does, and runs it through
``resolvers.compiled.direct``; it records the operation in the usage log and the metrics as
the schema's extensions would, and answers ``{"data": ...}`` encoded as the view encodes it.
Whatever it does not answer (None) goes through Strawberry's view unchanged: the first request
of a query text, bodies that are not plain JSON objects, batches, ``extensions``, a bad
token, mutations, any error.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types.graphql import OperationType

from app.server.metrics import ServerMetrics
from app.services.usage_log import UsageLogWriter
from app.settings import Settings
from resolvers.compiled.direct import accepted, run_query, runs_directly
from resolvers.context import Context
from resolvers.usage import record_usage

_PLAIN_KEYS = frozenset({"query", "variables", "operationName"})


class DirectReads:
    def __init__(
        self, settings: Settings, schema: Any, usage: UsageLogWriter, metrics: ServerMetrics
    ) -> None:
        self._schema = schema
        self._usage = usage
        self._metrics = metrics
        self.enabled = settings.fast_path and runs_directly(schema)

    async def answer(self, request: Request, view: Any) -> Response | None:
        """The response to ``request``, or None for the view to answer. ``view``: the
        GraphQL view, for its context and its JSON encoding."""
        started = time.perf_counter()
        if not self.enabled or "application/json" not in request.headers.get("content-type", ""):
            return None
        body = _plain_body(await request.body())
        if body is None:
            return None
        query, variables, operation_name = body
        document = accepted(self._schema, query)
        if document is None:
            return None
        try:
            context: Context = await view.get_context(request, None)
        except HTTPException:
            return None  # the view answers 401 itself
        answer = await run_query(self._schema, document, variables, operation_name, context)
        if answer is None:
            return None
        content = view.encode_json({"data": answer.data})
        seconds = time.perf_counter() - started
        self._metrics.observe_operation(
            OperationType.QUERY, answer.operation_name, failed=False, seconds=seconds
        )
        record_usage(
            self._usage,
            context,
            operation_type=OperationType.QUERY.value,
            operation_name=answer.operation_name,
            errors=(),
            duration_ms=seconds * 1000,
        )
        return Response(content, media_type="application/json")


def _plain_body(raw: bytes) -> tuple[str, dict[str, Any] | None, str | None] | None:
    """(query, variables, operation name) of a JSON object with no other key."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data.keys() <= _PLAIN_KEYS:
        return None
    query = data.get("query")
    variables = data.get("variables")
    operation_name = data.get("operationName")
    if (
        not isinstance(query, str)
        or not isinstance(variables, (dict, type(None)))
        or not isinstance(operation_name, (str, type(None)))
    ):
        return None
    return query, variables, operation_name
