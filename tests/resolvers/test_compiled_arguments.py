"""resolvers.compiled.arguments: for every argument of every field of the schema (queries,
mutations, subscriptions), the compiled converter gives exactly what Strawberry's
``convert_arguments`` gives, for values graphql-core coerces from generated inputs: every
input field set, only the required ones, explicit nulls, lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
)
from graphql.utilities import coerce_input_value
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from app.settings import Settings
from resolvers.compiled.arguments import arguments_converter
from resolvers.schema import build_schema

SAMPLES: dict[str, list[Any]] = {
    "String": ["text", ""],
    "ID": ["TWVzc2FnZTox", "x"],
    "Int": [3, 0],
    "Float": [1.5],
    "Boolean": [True, False],
    "DateTime": ["2024-05-01T09:30:00+00:00"],
}


def inputs(type_: GraphQLInputType, *, mode: str, depth: int = 0) -> Iterator[Any]:
    """JSON variable values for ``type_``. Input objects: ``mode`` "full" sets every field,
    "required" only the required ones, "nulls" every nullable one to null. Nullable positions
    also get an explicit null."""
    if isinstance(type_, GraphQLNonNull):
        yield from (v for v in inputs(type_.of_type, mode=mode, depth=depth) if v is not None)
        return
    yield None
    if isinstance(type_, GraphQLList):
        for item in inputs(type_.of_type, mode=mode, depth=depth + 1):
            yield [item, item]
        yield []
    elif isinstance(type_, GraphQLEnumType):
        yield from list(type_.values)[:2]
    elif isinstance(type_, GraphQLScalarType):
        yield from SAMPLES[type_.name]
    elif isinstance(type_, GraphQLInputObjectType):
        value: dict[str, Any] = {}
        for name, field in type_.fields.items():
            required = isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
            if mode == "nulls" and not isinstance(field.type, GraphQLNonNull):
                value[name] = None
            elif required or (mode == "full" and depth < 2):
                value[name] = next(
                    v for v in inputs(field.type, mode=mode, depth=depth + 1) if v is not None
                )
        yield value


def fields_with_arguments() -> Iterator[tuple[str, Any, StrawberryField]]:
    schema = build_schema(Settings())
    core = schema._schema
    for type_ in core.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            if field.args and isinstance(definition, StrawberryField):
                yield f"{type_.name}.{name}", (schema, field), definition


CASES = list(fields_with_arguments())


def test_the_schema_has_fields_with_input_arguments() -> None:
    names = {name for name, _, _ in CASES}
    assert {"Query.messages", "Query.threads", "Thread.messages"} <= names
    assert len(CASES) > 20


@pytest.mark.parametrize(("name", "where", "definition"), CASES, ids=[c[0] for c in CASES])
def test_the_converter_gives_what_strawberry_gives(
    name: str, where: tuple[Any, Any], definition: StrawberryField
) -> None:
    schema, field = where
    converter = schema.schema_converter
    convert = arguments_converter(definition, schema.config, converter.scalar_registry)
    assert convert is not None, f"{name}: no compiled converter"
    compared = 0
    for mode in ("full", "required", "nulls"):
        per_argument = {
            arg_name: list(inputs(arg.type, mode=mode)) for arg_name, arg in field.args.items()
        }
        for index in range(max(len(values) for values in per_argument.values())):
            raw: dict[str, Any] = {}
            for arg_name, values in per_argument.items():
                value = values[index % len(values)]
                arg_type = field.args[arg_name].type
                raw[arg_name] = coerce_input_value(value, arg_type)
                assert raw[arg_name] is not Undefined, f"{name}: {arg_name}={value!r} is invalid"
            expected = convert_arguments(
                raw, definition.arguments, converter.scalar_registry, schema.config
            )
            assert convert(raw) == expected, f"{name}: {raw}"
            compared += 1
    assert compared >= 3
