"""``CompiledExecutor``: graphql-core's executor, running query operations from a plan.

Strawberry builds it for every operation (``execution_context_class`` of the schema), after
parsing, validation and variable coercion, inside every schema extension. For a query
operation with ``fast_path`` on, a plan the cache holds and a token with every scope the
plan's fields check, it runs the plan; otherwise, and whenever a plan run meets anything
graphql-core would report as an error, graphql-core executes the operation from the start
(with fresh DataLoaders), so every error, path and null is its own.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo, OperationType
from graphql.execution.executor import to_nodes
from graphql.execution.values import get_argument_values
from graphql.pyutils import AwaitableOrValue
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.compiled.cache import plan_cache
from resolvers.compiled.compiler import FieldSpec, Plan
from resolvers.context import Context


class PlanRun:
    """One run of a plan: resolve infos and arguments, once per field position."""

    __slots__ = ("_arguments", "_executor", "_infos")

    def __init__(self, executor: CompiledExecutor) -> None:
        self._executor = executor
        self._infos: dict[FieldSpec, GraphQLResolveInfo[Any]] = {}
        self._arguments: dict[FieldSpec, dict[str, Any]] = {}

    def info(self, spec: FieldSpec) -> GraphQLResolveInfo[Any]:
        info = self._infos.get(spec)
        if info is None:
            info = self._executor.build_resolve_info(
                spec.field_def, to_nodes(spec.details), spec.parent_type, spec.path
            )
            self._infos[spec] = info
        return info

    def arguments(self, spec: FieldSpec) -> dict[str, Any]:
        arguments = self._arguments.get(spec)
        if arguments is None:
            first = spec.details[0]
            executor = self._executor
            arguments = (
                get_argument_values(
                    spec.field_def,
                    first.node,
                    executor.variable_values,
                    first.fragment_variable_values,
                    executor.hide_suggestions,
                )
                if spec.field_def.args or first.node.arguments
                else {}
            )
            self._arguments[spec] = arguments
        return arguments


class CompiledExecutor(StrawberryGraphQLCoreExecutionContext):
    """Runs query operations from compiled plans when it can, else as graphql-core does."""

    def execute_operation(self, serially: bool | None = None) -> AwaitableOrValue[Any]:
        context = self.context_value
        kind = self.operation.operation
        if kind is OperationType.SUBSCRIPTION or not isinstance(context, Context):
            return super().execute_operation(serially)
        if (
            serially is not None
            or kind is not OperationType.QUERY
            or not context.services.settings.fast_path
        ):
            return self._fallback(context, serially)
        plan = plan_cache(self.schema).plan(self)
        principal = context.principal
        if plan is None or principal is None or not plan.scopes <= principal.actions:
            return self._fallback(context)
        return self._run(plan, context)

    async def _run(self, plan: Plan, context: Context) -> Any:
        try:
            data = plan.root.complete(self.root_value, PlanRun(self))
            if plan.root.is_async:
                data = await data
        except Exception:
            context.loaders = {}
            result = self._fallback(context)
            return await result if self.is_awaitable(result) else result
        context.services.execution_paths.compiled += 1
        return self.build_response(data)

    def _fallback(self, context: Context, serially: bool | None = None) -> AwaitableOrValue[Any]:
        context.services.execution_paths.fallback += 1
        return super().execute_operation(serially)
