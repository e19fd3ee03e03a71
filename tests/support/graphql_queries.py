"""Random read queries over the public schema (``schema.graphql``), reproducible from a seed.

For the differential test of the compiled read path (``tests/resolvers/
test_fast_path_differential.py``): every query is built from ``random.Random(f"{seed}:{n}")``,
so query ``n`` of a seed is the same on every machine and can be rebuilt alone.

The walk follows the schema's own types from the read root fields (accounts, account, messages,
message, threads, thread, folders, folder, node, currentToken) and mixes in what execution must
get right: random field subsets and nested objects, aliases (also one field twice with other
arguments), named and inline fragments (on object types and on the ``Node`` interface, with
``__typename``), ``@include``/``@skip`` from literals and variables, arguments as literals or
variables (filters, page sizes, cursors, ids of any tenant, malformed ids). A small share of
queries are wrong on purpose (both page directions, bad cursors, out-of-range sizes, values of
the wrong type, conflicting fields) so errors are compared too.

Argument values come from ``Pools``, which the test fills from its seeded rows and real pages.
Nothing here talks to a server.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    is_leaf_type,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

READ_ROOTS = (
    "accounts",
    "account",
    "messages",
    "message",
    "threads",
    "thread",
    "folders",
    "folder",
    "node",
    "currentToken",
)
# Object-valued fields that fan out (lists, connections, lookups of other objects): each one
# spends one level of the nesting budget, so a query stays small whatever the schema allows.
# A connection's nodes and edges are free: the connection paid.
_EXPANSIONS = frozenset(
    {
        "folders",
        "threads",
        "messages",
        "labels",
        "thread",
        "account",
        "parent",
        "attachments",
        "headers",
    }
)


# Past this many fields a query only completes the selections it has opened, with one field
# each: without a cap, fragments and nesting multiply into documents of many kilobytes.
_MAX_FIELDS = 40


# Two fields under one response key with other arguments: a validation error.
_CONFLICT = "messages(first: 1) { nodes { id } } messages(first: 2) { nodes { id } }"
# Root lookups by id and the type of the id each expects (``node`` takes any).
_LOOKUPS = {"account": "Account", "message": "Message", "thread": "Thread", "folder": "Folder"}


@cache
def read_schema() -> GraphQLSchema:
    """The public schema, as ``schema.graphql`` states it."""
    return build_schema(SCHEMA_FILE.read_text())


@dataclass
class Pools:
    """Values arguments are drawn from: global ids by type (own, foreign, deleted, malformed
    ones together), cursors of real pages by list kind, and filter texts and dates."""

    ids: dict[str, list[str]]
    message_cursors: list[str]
    thread_cursors: list[str]
    texts: list[str]
    dates: list[str]

    def any_id(self, rng: random.Random) -> str:
        kind = rng.choice(sorted(self.ids))
        return rng.choice(self.ids[kind])


@dataclass(frozen=True)
class GeneratedQuery:
    """One request body: the document, its variables and the operation to run."""

    seed: str
    query: str
    variables: dict[str, Any]
    operation_name: str | None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"query": self.query, "variables": self.variables}
        if self.operation_name is not None:
            body["operationName"] = self.operation_name
        return body

    def describe(self) -> str:
        """Everything needed to send this query again by hand."""
        return (
            f"query {self.seed} (operationName {self.operation_name!r}):\n{self.query}\n"
            f"variables: {json.dumps(self.variables, ensure_ascii=False)}"
        )


@dataclass
class _Fragment:
    name: str
    on: str
    text: str


@dataclass
class _Build:
    """The state of one query under construction."""

    rng: random.Random
    variables: dict[str, tuple[str, Any, str | None]] = field(default_factory=dict)
    fragments: list[_Fragment] = field(default_factory=list)
    aliases: int = 0
    fragment_names: int = 0
    fields: int = 0

    @property
    def full(self) -> bool:
        return self.fields >= _MAX_FIELDS

    def fragment_name(self) -> str:
        self.fragment_names += 1
        return f"F{self.fragment_names}"

    def alias(self, name: str) -> str:
        self.aliases += 1
        return f"{name}{self.aliases}"

    def variable(self, type_text: str, value: Any, default: str | None = None) -> str:
        name = f"v{len(self.variables) + 1}"
        self.variables[name] = (type_text, value, default)
        return "$" + name


def literal(value: Any) -> str:
    """``value`` written as a GraphQL literal (JSON escapes are GraphQL escapes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {literal(item)}" for key, item in value.items()) + "}"
    raise TypeError(type(value))


class QueryGenerator:
    """Builds query ``n`` of ``seed`` over the read schema from ``pools``."""

    def __init__(self, pools: Pools, *, seed: int, schema: GraphQLSchema | None = None) -> None:
        self.schema = schema or read_schema()
        self.pools = pools
        self.seed = seed

    def query(self, number: int) -> GeneratedQuery:
        label = f"{self.seed}:{number}"
        build = _Build(random.Random(label))
        rng = build.rng
        query_type = self.schema.query_type
        assert query_type is not None
        roots = rng.sample(READ_ROOTS, k=rng.choice((1, 1, 1, 2, 2, 3)))
        budget = rng.choice((2, 3, 3, 4))
        selections = [self._field(build, query_type, name, budget) for name in roots]
        if rng.random() < 0.15:
            selections.append("__typename")
        if rng.random() < 0.04:
            selections.append(_CONFLICT)
        body = " ".join(selections)
        declared = " ".join(
            f"${name}: {type_text}" + ("" if default is None else f" = {default}")
            for name, (type_text, _, default) in build.variables.items()
        )
        header = f"query Q{'(' + declared + ')' if declared else ''}"
        document = [f"{header} {{ {body} }}"]
        document += [f"fragment {f.name} on {f.on} {{ {f.text} }}" for f in build.fragments]
        operation_name: str | None = None
        if rng.random() < 0.1:
            document.insert(
                rng.randrange(len(document) + 1), "query Other { currentToken { scopes } }"
            )
            operation_name = "Q"
        elif rng.random() < 0.3:
            operation_name = "Q"
        values = {
            name: value
            for name, (_, value, default) in build.variables.items()
            if default is None or rng.random() < 0.5
        }
        return GeneratedQuery(label, "\n".join(document), values, operation_name)

    # --- selections ----------------------------------------------------------------------

    def _selection_set(self, build: _Build, type_: GraphQLNamedType, budget: int) -> str:
        """``{ ... }`` for an object or interface type: a few fields, maybe fragments."""
        rng = build.rng
        parts: list[str] = []
        if build.full:
            parts += (
                self._object_fields(build, type_, 0)
                if isinstance(type_, GraphQLObjectType)
                else ["id"]
            )
        elif isinstance(type_, GraphQLInterfaceType):
            parts += self._interface_parts(build, type_, budget)
        else:
            assert isinstance(type_, GraphQLObjectType)
            parts += self._object_fields(build, type_, budget)
            if rng.random() < 0.2:
                parts.append(self._spread(build, type_, budget))
            if rng.random() < 0.12:
                parts.append(self._inline(build, type_, budget, typed=rng.random() < 0.5))
            if "Node" in {i.name for i in type_.interfaces} and rng.random() < 0.1:
                parts.append(f"... on Node {{ {self._interface_body(build)} }}")
        if rng.random() < 0.15:
            parts.append("__typename")
        return "{ " + " ".join(parts or ["__typename"]) + " }"

    def _object_fields(self, build: _Build, type_: GraphQLObjectType, budget: int) -> list[str]:
        rng = build.rng
        names = [
            name
            for name in type_.fields
            if budget > 0 or name not in _EXPANSIONS or not self._is_object(type_.fields[name])
        ]
        count = 1 if build.full else min(len(names), rng.choice((1, 2, 2, 3, 4, 5)))
        chosen = rng.sample(names, k=count)
        return [self._field(build, type_, name, budget) for name in chosen]

    def _interface_body(self, build: _Build) -> str:
        """What a selection on ``Node`` itself may ask: ``id`` and ``__typename``."""
        parts = ["id"] if build.rng.random() < 0.8 else []
        if build.rng.random() < 0.6 or not parts:
            parts.append("__typename")
        return " ".join(parts)

    def _interface_parts(
        self, build: _Build, interface: GraphQLInterfaceType, budget: int
    ) -> list[str]:
        """On ``Node``: its own fields and inline fragments (or spreads) per implementation."""
        rng = build.rng
        parts = [self._interface_body(build)]
        for impl in self.schema.get_implementations(interface).objects:
            roll = rng.random()
            if roll < 0.35:
                parts.append(self._inline(build, impl, budget, typed=True))
            elif roll < 0.5:
                parts.append(self._spread(build, impl, budget))
        if rng.random() < 0.15:
            parts.append(self._spread(build, interface, budget))
        return parts

    def _inline(self, build: _Build, type_: GraphQLObjectType, budget: int, *, typed: bool) -> str:
        head = f"... on {type_.name}" if typed else "..."
        inner = self._selection_set(build, type_, budget)
        return f"{head}{self._directive(build)} {inner}"

    def _spread(self, build: _Build, type_: GraphQLNamedType, budget: int) -> str:
        """A spread of a fragment on ``type_``: an existing one, or a new one defined now."""
        rng = build.rng
        existing = [f for f in build.fragments if f.on == type_.name]
        if existing and rng.random() < 0.5:
            fragment = rng.choice(existing)
        else:
            name = build.fragment_name()
            if isinstance(type_, GraphQLInterfaceType):
                text = self._interface_body(build)
            else:
                text = self._selection_set(build, type_, budget)[2:-2]
            fragment = _Fragment(name, type_.name, text)
            # Listed once its body is built: a body never spreads its own fragment.
            build.fragments.append(fragment)
        return f"...{fragment.name}{self._directive(build)}"

    def _field(self, build: _Build, parent: GraphQLObjectType, name: str, budget: int) -> str:
        rng = build.rng
        build.fields += 1
        definition = parent.fields[name]
        arguments = self._arguments(build, parent, name, definition)
        key = name
        if arguments or rng.random() < 0.1:
            # A field with arguments gets a key of its own, so two of them never conflict.
            key = f"{build.alias(name)}: {name}"
        text = key + (f"({', '.join(arguments)})" if arguments else "") + self._directive(build)
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return text
        spend = 1 if name in _EXPANSIONS else 0
        if rng.random() < 0.08 and name in ("messages", "threads"):
            # The same field again under another alias, with other arguments.
            twin = self._field(build, parent, name, budget)
            return text + " " + self._selection_set(build, named, budget - spend) + " " + twin
        return text + " " + self._selection_set(build, named, budget - spend)

    def _is_object(self, definition: GraphQLField) -> bool:
        return not is_leaf_type(get_named_type(definition.type))

    def _directive(self, build: _Build) -> str:
        rng = build.rng
        roll = rng.random()
        if roll > 0.12:
            return ""
        name = "include" if rng.random() < 0.5 else "skip"
        if rng.random() < 0.5:
            condition = literal(rng.random() < 0.5)
        elif rng.random() < 0.8:
            condition = build.variable("Boolean!", rng.random() < 0.5)
        else:
            condition = build.variable("Boolean", None, default=literal(rng.random() < 0.5))
        return f" @{name}(if: {condition})"

    # --- arguments -------------------------------------------------------------------------

    def _arguments(
        self, build: _Build, parent: GraphQLObjectType, name: str, definition: GraphQLField
    ) -> list[str]:
        rng = build.rng
        written: list[str] = []
        both_ends = "last" in definition.args and rng.random() < 0.03
        for arg_name, argument in definition.args.items():
            required = isinstance(argument.type, GraphQLNonNull)
            if both_ends and arg_name in ("first", "last"):
                written.append(f"{arg_name}: 1")  # both directions: BAD_USER_INPUT
                continue
            if not required and rng.random() < 0.55:
                continue
            value = self._argument_value(build, parent, name, arg_name, argument.type)
            written.append(f"{arg_name}: {self._value_text(build, argument.type, value)}")
        return written

    def _value_text(self, build: _Build, type_: GraphQLInputType, value: Any) -> str:
        """A literal, or a variable carrying ``value``; input objects field by field."""
        rng = build.rng
        named = get_named_type(type_)
        if isinstance(named, GraphQLInputObjectType) and isinstance(value, dict):
            if rng.random() < 0.5:
                return build.variable(named.name, value)
            items = []
            for key, item in value.items():
                inner = named.fields[key].type
                items.append(f"{key}: {self._value_text(build, inner, item)}")
            return "{" + ", ".join(items) + "}"
        if rng.random() < 0.45:
            if rng.random() < 0.02:
                return build.variable(str(type_), ["not", "this", "type"])  # BAD_USER_INPUT
            if not isinstance(type_, GraphQLNonNull) and value is not None and rng.random() < 0.2:
                return build.variable(str(type_), value, default=literal(value))
            return build.variable(str(type_), value)
        return literal(value)

    def _argument_value(
        self, build: _Build, parent: GraphQLObjectType, field_name: str, name: str, type_: Any
    ) -> Any:
        rng = build.rng
        named = get_named_type(type_)
        if name in ("first", "last"):
            return rng.choice((0, 1, 1, 2, 2, 3, 3, 5, 7, 25, 100, 101, -1, None))
        if name in ("after", "before"):
            return self._cursor(rng, self._list_kind(parent, field_name))
        if name == "id":
            return self._id_for(rng, field_name)
        if name == "accountId":
            return self._some_id(rng, "Account")
        if isinstance(named, GraphQLInputObjectType):
            return self._filter(build, named)
        raise LookupError(f"no values for {parent.name}.{field_name}({name})")

    def _list_kind(self, parent: GraphQLObjectType, field_name: str) -> str:
        named = get_named_type(parent.fields[field_name].type)
        return "thread" if named.name == "ThreadConnection" else "message"

    def _cursor(self, rng: random.Random, kind: str) -> str | None:
        roll = rng.random()
        own = self.pools.thread_cursors if kind == "thread" else self.pools.message_cursors
        other = self.pools.message_cursors if kind == "thread" else self.pools.thread_cursors
        if roll < 0.75:
            return rng.choice(own)
        if roll < 0.85:
            return rng.choice(other)  # a cursor of another list: BAD_USER_INPUT
        return rng.choice(("garbage", "", "bTo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk6MQ", None))

    def _id_for(self, rng: random.Random, field_name: str) -> str:
        kind = _LOOKUPS.get(field_name)
        if kind is None or rng.random() < 0.15:
            return self.pools.any_id(rng)
        return self._some_id(rng, kind)

    def _some_id(self, rng: random.Random, kind: str) -> str:
        return rng.choice(self.pools.ids[kind] + self.pools.ids["Malformed"])

    def _filter(self, build: _Build, type_: GraphQLInputObjectType) -> dict[str, Any]:
        rng = build.rng
        value: dict[str, Any] = {}
        names = rng.sample(sorted(type_.fields), k=rng.choice((0, 1, 1, 1, 2, 3)))
        for name in names:
            if name in ("accountId", "folderId", "threadId"):
                value[name] = self._some_id(rng, name[:-2].capitalize())
            elif name in ("unread", "starred", "hasAttachments"):
                value[name] = rng.random() < 0.5
            elif name in ("since", "until"):
                value[name] = rng.choice(self.pools.dates)
            else:
                value[name] = rng.choice(self.pools.texts)
        return value
