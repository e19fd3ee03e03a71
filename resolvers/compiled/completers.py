"""Completers: graphql-core's ``complete_value`` for one return type, decided at compile time.

graphql-core decides per value what a field's type needs (non-null check, list, leaf
coercion, sub-selection); a plan decides it once and keeps a closure per position. A
completer returns the response value for one resolved value, or an awaitable of it when its
position holds a resolver that may be asynchronous (``Completer.is_async``). Whatever
graphql-core would turn into an error (a null where the type forbids it, a leaf that does not
coerce, an object of the wrong type, a resolver that returns an exception) raises
``NotCompiled``: the operation is then executed by graphql-core, which produces the error
(and the null propagation) itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, Protocol

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLLeafType,
    GraphQLResolveInfo,
    GraphQLString,
    Undefined,
)
from strawberry.types.cast import get_strawberry_type_cast


class NotCompiled(Exception):
    """The plan cannot answer this exactly as graphql-core would: graphql-core answers."""


class Run(Protocol):
    """What completers need of the running operation (``executor.PlanRun``)."""

    def info(self, spec: Any) -> GraphQLResolveInfo[Any]: ...

    def arguments(self, spec: Any) -> dict[str, Any]: ...


Complete = Callable[[Any, Run], Any]
Getter = Callable[[Any, Run], Any]
IsTypeOf = Callable[[Any, GraphQLResolveInfo[Any]], Any]


class _Never:
    """A class no value has: ``Completer.unchanged`` of completers without a shortcut."""


@dataclass(frozen=True, slots=True)
class Completer:
    complete: Complete
    is_async: bool
    unchanged: type = _Never  # values of exactly this class complete to themselves


@dataclass(frozen=True, slots=True)
class Step:
    """One response key of an object: how to get its value and complete it."""

    key: str
    get: Getter
    resolves: bool  # a resolver call: its result may be awaitable (or an exception)
    completer: Completer
    attribute: str | None = None  # ``get`` is ``getattr(value, attribute)``


# Built-in scalars whose coercion returns a value of this exact class unchanged.
_UNCHANGED: dict[GraphQLLeafType, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLBoolean: bool,
}


def leaf(leaf_type: GraphQLLeafType, *, required: bool) -> Completer:
    """A scalar or enum, coerced by the type itself (its own ``coerce_output_value``), except
    the values that coercion is known to return as they are. ``required``: non-null."""
    coerce = leaf_type.coerce_output_value
    unchanged = _UNCHANGED.get(leaf_type)

    def complete(value: Any, run: Run) -> Any:
        if value.__class__ is unchanged:
            return value
        if value is None:
            if required:
                raise NotCompiled
            return None
        # Executor.complete_leaf_value, inline: it raises for these two results.
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise NotCompiled
        return coerced

    return Completer(complete, is_async=False, unchanged=unchanged or _Never)


def nullable(inner: Completer) -> Completer:
    if inner.is_async:
        complete_inner = inner.complete

        async def complete_async(value: Any, run: Run) -> Any:
            return None if value is None else await complete_inner(value, run)

        return Completer(complete_async, is_async=True)
    complete_sync = inner.complete

    def complete(value: Any, run: Run) -> Any:
        return None if value is None else complete_sync(value, run)

    return Completer(complete, is_async=False)


def non_null(inner: Completer) -> Completer:
    complete_inner = inner.complete
    if inner.is_async:

        async def complete_async(value: Any, run: Run) -> Any:
            if value is None:
                raise NotCompiled
            return await complete_inner(value, run)

        return Completer(complete_async, is_async=True)

    def complete(value: Any, run: Run) -> Any:
        if value is None:
            raise NotCompiled
        return complete_inner(value, run)

    return Completer(complete, is_async=False)


def list_of(item: Completer, *, required: bool) -> Completer:
    """A list (``required``: non-null); with asynchronous items they run concurrently
    (DataLoaders batch them)."""
    complete_item = item.complete
    if item.is_async:

        async def complete_async(value: Any, run: Run) -> Any:
            if value is None:
                if required:
                    raise NotCompiled
                return None
            if not isinstance(value, (list, tuple)):
                raise NotCompiled
            return await _all(complete_item(x, run) for x in value)

        return Completer(complete_async, is_async=True)

    def complete(value: Any, run: Run) -> Any:
        if value is None:
            if required:
                raise NotCompiled
            return None
        if not isinstance(value, (list, tuple)):
            raise NotCompiled
        return [complete_item(x, run) for x in value]

    return Completer(complete, is_async=False)


async def _all(items: Iterable[Awaitable[Any]]) -> list[Any]:
    """Every item's value, run concurrently. When one fails the others are cancelled and
    awaited before the failure leaves: nothing of an abandoned run outlives it."""
    tasks = [asyncio.ensure_future(item) for item in items]
    try:
        return [await task for task in tasks]
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _check_type(is_type_of: IsTypeOf, spec: Any, value: Any, run: Run, exact: type | None) -> None:
    if value.__class__ is exact and get_strawberry_type_cast(value) is None:
        return  # Strawberry's own check is an isinstance of this class
    verdict = is_type_of(value, run.info(spec))
    if verdict is True:
        return
    if isawaitable(verdict):  # graphql-core would await it; Strawberry's never is one
        getattr(verdict, "close", lambda: None)()
        raise NotCompiled
    if not verdict:
        raise NotCompiled


async def _settled(value: Any) -> Any:
    if isawaitable(value):
        value = await value
    if isinstance(value, Exception):
        raise NotCompiled
    return value


def object_of(
    is_type_of: IsTypeOf | None,
    spec: Any,
    steps: Sequence[Step],
    *,
    required: bool | None,
    exact: type | None = None,
) -> Completer:
    """An object (``required``: non-null; None: the root value, which is None itself): a
    dict of its response keys in selection order. ``exact``: a class whose instances
    ``is_type_of`` is known to accept (Strawberry's check for the type's own class).
    Synchronous when no step calls a resolver (plain attributes of the Strawberry object)."""
    if not any(step.resolves or step.completer.is_async for step in steps):
        if all(step.attribute is not None for step in steps):
            # The common case, as plain as it gets: attributes of a Strawberry object.
            # A leaf whose value has its unchanged class is taken without a call.
            reads = [
                (step.key, step.attribute, step.completer.unchanged, step.completer.complete)
                for step in steps
                if step.attribute is not None
            ]

            def complete_attributes(value: Any, run: Run) -> Any:
                if value is None and required is not None:
                    if required:
                        raise NotCompiled
                    return None
                if is_type_of is not None:
                    _check_type(is_type_of, spec, value, run, exact)
                return {
                    key: found
                    if (found := getattr(value, name)).__class__ is unchanged
                    else done(found, run)
                    for key, name, unchanged, done in reads
                }

            return Completer(complete_attributes, is_async=False)
        pairs = [(step.key, step.get, step.completer.complete) for step in steps]

        def complete(value: Any, run: Run) -> Any:
            if value is None and required is not None:
                if required:
                    raise NotCompiled
                return None
            if is_type_of is not None:
                _check_type(is_type_of, spec, value, run, exact)
            return {key: done(get(value, run), run) for key, get, done in pairs}

        return Completer(complete, is_async=False)

    plan = [
        (step.key, step.get, step.resolves, step.completer.complete, step.completer.is_async)
        for step in steps
    ]

    async def complete_async(value: Any, run: Run) -> Any:
        if value is None and required is not None:
            if required:
                raise NotCompiled
            return None
        if is_type_of is not None:
            _check_type(is_type_of, spec, value, run, exact)
        out: dict[str, Any] = {}
        for key, get, resolves, done, done_async in plan:
            found = get(value, run)
            if resolves:
                found = await _settled(found)
            completed = done(found, run)
            out[key] = await completed if done_async else completed
        return out

    return Completer(complete_async, is_async=True)


def abstract_of(
    resolve_type: Callable[[Any, GraphQLResolveInfo[Any], Any], Any],
    return_type: Any,
    spec: Any,
    by_type: dict[str, Completer],
) -> Completer:
    """An interface or union: the runtime type as the schema resolves it, then that type's
    completer (every possible type is compiled)."""

    def pick(value: Any, run: Run) -> Completer:
        name = resolve_type(value, run.info(spec), return_type)
        if isawaitable(name):  # graphql-core would await it; Strawberry's never is one
            getattr(name, "close", lambda: None)()
            raise NotCompiled
        completer = by_type.get(name) if isinstance(name, str) else None
        if completer is None:
            raise NotCompiled
        return completer

    if any(completer.is_async for completer in by_type.values()):

        async def complete_async(value: Any, run: Run) -> Any:
            completer = pick(value, run)
            completed = completer.complete(value, run)
            return await completed if completer.is_async else completed

        return Completer(complete_async, is_async=True)

    def complete(value: Any, run: Run) -> Any:
        return pick(value, run).complete(value, run)

    return Completer(complete, is_async=False)
