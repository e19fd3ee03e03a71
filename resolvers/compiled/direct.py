"""The direct read path: a query the schema accepted before, run from its plan without the
request pipeline around it.

Strawberry's pipeline (extension hooks, parsing and validation steps, result processing)
costs a read about as much as completing its 50 messages. For a query text that the schema's
own pipeline parsed and validated before (``validation.accepted_document``), nothing in that
pipeline can change the answer of a query that succeeds: this path builds graphql-core's
executor (variable coercion), takes the operation's plan and runs it. Anything else gives
None and the caller sends the request through the full pipeline, which then answers it
exactly as it always did: another operation type, variables that do not coerce, a token
without a scope the plan checks, a plan that is not compiled, any error while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from graphql import DocumentNode, OperationDefinitionNode, OperationType
from strawberry.execution.is_awaitable import optimized_is_awaitable

from resolvers.compiled.cache import plan_cache
from resolvers.compiled.executor import CompiledExecutor, PlanRun
from resolvers.compiled.validation import accepted_document
from resolvers.context import Context


@dataclass(frozen=True, slots=True)
class Answer:
    """The data of a query answered without errors, and the operation's name (the one
    given, else the document's), as the pipeline's extensions would see it."""

    data: dict[str, Any]
    operation_name: str | None


def runs_directly(schema: Any) -> bool:
    """Whether ``schema`` can use this path: no extension wraps resolvers (plans never run
    under resolver middleware)."""
    extensions = schema.get_extensions()
    return not schema._get_middleware_manager(extensions).middlewares


def accepted(schema: Any, query: str) -> DocumentNode | None:
    """The document of ``query`` if the schema's pipeline accepted it before (else None:
    use the full pipeline). ``schema``: the Strawberry schema."""
    return accepted_document(schema._schema, query)


async def run_query(
    schema: Any,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Context,
) -> Answer | None:
    """``document``: one ``accepted`` gave. None: use the full pipeline."""
    core = schema._schema
    executor = CompiledExecutor.build(
        core,
        document,
        context_value=context,
        raw_variable_values=variables,
        operation_name=operation_name,
        is_awaitable=cast("Any", optimized_is_awaitable),  # as Strawberry builds it
        operation_extensions=None,
    )
    if not isinstance(executor, CompiledExecutor):  # variables that do not coerce, ...
        return None
    operation: OperationDefinitionNode = executor.operation
    principal = context.principal
    if operation.operation is not OperationType.QUERY or principal is None:
        return None
    plan = plan_cache(core).plan(executor)
    if plan is None or not plan.scopes <= principal.actions:
        return None
    try:
        data = plan.root.complete(None, PlanRun(executor))
        if plan.root.is_async:
            data = await data
    except Exception:
        context.loaders = {}
        return None
    context.services.execution_paths.direct += 1
    name = operation_name or (operation.name.value if operation.name else None)
    return Answer(data=data, operation_name=name)
