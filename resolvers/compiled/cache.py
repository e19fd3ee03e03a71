"""The plan cache: one compiled plan (or "unsupported") per operation and switch values.

Keyed by the document text and operation name, then by the values of the variables that
``@include``/``@skip`` read (they decide which fields are collected; every other variable is
read when the plan runs). One cache per GraphQL schema, least recently used out past
``MAX_OPERATIONS``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    DirectiveNode,
    GraphQLError,
    GraphQLSchema,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution import Executor

from resolvers.compiled.compiler import Plan, Unsupported, compile_operation

MAX_OPERATIONS = 512
MAX_SWITCH_COMBINATIONS = 16
_SWITCHES = ("include", "skip")


@dataclass(slots=True)
class _Operation:
    switches: tuple[str, ...]
    plans: dict[tuple[Any, ...], Plan | None] = field(default_factory=dict)


class PlanCache:
    """Plans of one schema's operations."""

    def __init__(self, max_operations: int = MAX_OPERATIONS) -> None:
        self._max = max_operations
        self._operations: OrderedDict[tuple[str, str | None], _Operation] = OrderedDict()

    def plan(self, executor: Executor[Any]) -> Plan | None:
        """The plan of ``executor``'s operation, or None when plans do not cover it."""
        operation = executor.operation
        if operation.loc is None:
            return None
        name = operation.name.value if operation.name else None
        key = (operation.loc.source.body, name)
        entry = self._operations.get(key)
        if entry is None:
            entry = _Operation(switches=tuple(sorted(_switch_variables(executor))))
            self._operations[key] = entry
            if len(self._operations) > self._max:
                self._operations.popitem(last=False)
        else:
            self._operations.move_to_end(key)
        coerced = executor.variable_values.coerced
        values = tuple(coerced.get(variable) for variable in entry.switches)
        if values in entry.plans:
            return entry.plans[values]
        try:
            plan: Plan | None = compile_operation(executor)
        except Unsupported:
            plan = None
        except GraphQLError:
            # graphql-core reports this (e.g. a null @include condition) where the field is
            # reached, if it is: it must run the operation itself.
            plan = None
        if len(entry.plans) < MAX_SWITCH_COMBINATIONS:
            entry.plans[values] = plan
        return plan


_caches: WeakKeyDictionary[GraphQLSchema, PlanCache] = WeakKeyDictionary()


def plan_cache(schema: GraphQLSchema) -> PlanCache:
    cache = _caches.get(schema)
    if cache is None:
        cache = _caches[schema] = PlanCache()
    return cache


def _switch_variables(executor: Executor[Any]) -> set[str]:
    """Names of the variables that an ``@include``/``@skip`` of the operation reads."""
    sets = [executor.operation.selection_set]
    sets += [fragment.selection_set for fragment in executor.fragment_definitions.values()]
    return {
        argument.value.name.value
        for directive in _directives(sets)
        if directive.name.value in _SWITCHES
        for argument in directive.arguments or ()
        if isinstance(argument.value, VariableNode)
    }


def _directives(selection_sets: Iterable[SelectionSetNode | None]) -> Iterator[DirectiveNode]:
    pending = list(selection_sets)
    while pending:
        selection_set = pending.pop()
        if selection_set is None:
            continue
        for selection in selection_set.selections:
            yield from selection.directives or ()
            pending.append(getattr(selection, "selection_set", None))
