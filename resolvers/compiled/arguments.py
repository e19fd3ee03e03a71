"""Argument converters: Strawberry's ``convert_arguments`` for one field, decided at compile time.

Strawberry converts a field's coerced GraphQL arguments (graphql-core's dict, GraphQL names)
into the resolver's keyword arguments (Python names, input types built as their classes) on
every call, resolving each argument's annotation again each time. A converter resolves the
types once, when the plan is compiled, and then does per call what ``convert_argument`` does
for these types: optional and list wrappers, scalars and enums as they are, input types built
with every field that has no default set to None first. Types it does not cover (``Maybe``,
``GlobalID``, input types with ``from_input``, anything unknown) give no converter: the field
is then called through Strawberry's own resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import _is_leaf_type, _is_optional_leaf_type
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]
ArgumentsConverter = Callable[[Mapping[str, Any]], dict[str, Any]]


class NotConvertible(Exception):
    """A type this module does not convert: Strawberry's resolver does."""


def arguments_converter(
    field: StrawberryField, config: StrawberryConfig, scalars: Mapping[object, Any]
) -> ArgumentsConverter | None:
    """The keyword arguments of ``field``'s resolver from graphql-core's argument values."""
    try:
        parts = [
            (
                config.name_converter.from_argument(argument),
                argument.python_name,
                _converter(argument.type, config, scalars),
            )
            for argument in field.arguments
        ]
    except NotConvertible:
        return None

    def convert(values: Mapping[str, Any]) -> dict[str, Any]:
        return {python: make(values[name]) for name, python, make in parts if name in values}

    return convert


def _converter(type_: Any, config: StrawberryConfig, scalars: Mapping[object, Any]) -> Convert:
    if isinstance(type_, StrawberryMaybe):
        raise NotConvertible("Maybe")
    if isinstance(type_, StrawberryOptional):
        return _converter(type_.of_type, config, scalars)
    if isinstance(type_, LazyType):
        return _converter(type_.resolve_type(), config, scalars)
    if isinstance(type_, StrawberryList):
        return _list(type_, config, scalars)
    if _is_leaf_type(type_, scalars):
        if type_ is GlobalID:
            raise NotConvertible("GlobalID")
        return _unchanged
    if has_enum_definition(type_):
        return _unchanged
    if has_object_definition(type_):
        return _input(type_, config, scalars)
    raise NotConvertible(repr(type_))


def _unchanged(value: Any) -> Any:
    return value


def _list(
    type_: StrawberryList, config: StrawberryConfig, scalars: Mapping[object, Any]
) -> Convert:
    item = type_.of_type
    skip = (GlobalID,)
    if _is_leaf_type(item, scalars, skip) or _is_optional_leaf_type(item, scalars, skip):

        def copy(value: Any) -> Any:
            # Copied, as Strawberry does: graphql-core shares a default between requests.
            return value if value is None or value is UNSET else list(value)

        return copy
    convert_item = _converter(item, config, scalars)

    def convert(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        return [convert_item(x) for x in value]

    return convert


def _input(type_: Any, config: StrawberryConfig, scalars: Mapping[object, Any]) -> Convert:
    definition = type_.__strawberry_definition__
    if definition.from_input is not None or not definition.is_input:
        raise NotConvertible("an input type that builds itself")
    defaults = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is MISSING and field.default_factory is MISSING
    }
    fields = [
        (
            config.name_converter.from_field(field),
            field.python_name,
            _converter(field.resolve_type(type_definition=definition), config, scalars),
        )
        for field in definition.fields
    ]

    def convert(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        kwargs = dict(defaults)
        for name, python, make in fields:
            if name in value:
                kwargs[python] = make(value[name])
        return type_(**kwargs)

    return convert
