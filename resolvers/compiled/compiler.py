"""The compiler: a validated query operation -> a tree of completers, or ``Unsupported``.

Fields are collected with graphql-core's own ``collect_fields``/``collect_subfields`` (so
fragments, inline fragments, aliases, merging and ``@include``/``@skip`` mean exactly what
they mean there; the directive variables' values are part of the plan's key). Each field
then gets a getter and a completer for its type:

- a plain Strawberry field (no resolver): the attribute, read as Strawberry's default
  resolver reads it;
- a field with a resolver (and its field extensions, such as the scope check): the schema's
  own ``resolve`` function, with graphql-core's ``get_argument_values`` and resolve info,
  exactly as graphql-core calls it;
- ``__typename``: the object type's name.

Interfaces and unions compile every possible type's selection and pick one per value with the
schema's own ``resolve_type``. Not compiled (graphql-core runs them): other introspection
fields, ``@defer``/``@stream``, fragment arguments, and schemas with resolver middleware.
The scopes the plan's resolvers check (``HasScope``) are collected, so a token that lacks one
goes to graphql-core before anything runs, for its exact FORBIDDEN errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLUnionType,
    is_leaf_type,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import (
    CollectedFields,
    FieldDetails,
    collect_fields,
    collect_subfields,
)
from graphql.pyutils import Path
from strawberry.permission import PermissionExtension
from strawberry.types.field import StrawberryField

from app.types import Action
from resolvers.compiled.arguments import arguments_converter
from resolvers.compiled.completers import (
    Completer,
    Getter,
    Run,
    Step,
    abstract_of,
    leaf,
    list_of,
    non_null,
    nullable,
    object_of,
)
from resolvers.permissions import HasScope

_STRAWBERRY_FIELD = "strawberry-definition"


class Unsupported(Exception):
    """The operation uses something plans do not cover: graphql-core executes it."""


@dataclass(eq=False, slots=True)
class FieldSpec:
    """One field position of the operation (hashed by identity: a run memoises per spec)."""

    field_def: GraphQLField
    details: list[FieldDetails]
    parent_type: GraphQLObjectType
    path: Path


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled operation: the root object's completer and the scopes it checks."""

    root: Completer
    scopes: frozenset[Action]


def compile_operation(executor: Executor[Any]) -> Plan:
    """The plan of ``executor``'s query operation, for its variables' directive values."""
    return _Compiler(executor).compile()


class _Compiler:
    def __init__(self, executor: Executor[Any]) -> None:
        manager = executor.middleware_manager
        if manager is not None and manager.middlewares:
            raise Unsupported("resolver middleware")
        self.executor = executor
        self.strawberry = getattr(executor.schema, "_strawberry_schema", None)
        self.scopes: set[Action] = set()

    def compile(self) -> Plan:
        executor = self.executor
        root_type = executor.schema.query_type
        if root_type is None:
            raise Unsupported("no query type")
        collected = collect_fields(
            executor.schema,
            executor.fragments,
            executor.variable_values,
            root_type,
            executor.operation,
            executor.hide_suggestions,
        )
        root = self._object(root_type, collected, None, None, required=None)
        return Plan(root=root, scopes=frozenset(self.scopes))

    def _object(
        self,
        object_type: GraphQLObjectType,
        collected: CollectedFields,
        path: Path | None,
        spec: FieldSpec | None,
        *,
        required: bool | None,
    ) -> Completer:
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise Unsupported("@defer or @stream")
        steps = []
        for key, details in collected.grouped_field_set.items():
            if any(d.defer_usage or d.fragment_variable_values for d in details):
                raise Unsupported("@defer or fragment arguments")
            name = details[0].node.name.value
            if name == "__typename":
                steps.append(_typename(key, object_type.name))
                continue
            field_def = object_type.fields.get(name)
            if field_def is None or name.startswith("__"):
                raise Unsupported(name)
            field = FieldSpec(field_def, details, object_type, Path(path, key, object_type.name))
            self._collect_scopes(field_def)
            get, attribute = _getter(field, self.strawberry)
            resolves = attribute is None
            completer = self._value(field_def.type, field)
            steps.append(Step(key, get, resolves, completer, attribute))
        is_type_of = None if spec is None else object_type.is_type_of
        exact = _strawberry_class(object_type) if is_type_of is not None else None
        return object_of(is_type_of, spec, steps, required=required, exact=exact)

    def _value(self, return_type: GraphQLOutputType, field: FieldSpec) -> Completer:
        required = isinstance(return_type, GraphQLNonNull)
        named = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        # Leaves, lists and objects check for null themselves (no wrapper call per value).
        if is_leaf_type(named):
            return leaf(named, required=required)
        if isinstance(named, GraphQLList):
            return list_of(self._value(named.of_type, field), required=required)
        if isinstance(named, GraphQLObjectType):
            return self._selected(named, field, required=required)
        if isinstance(named, (GraphQLInterfaceType, GraphQLUnionType)):
            executor = self.executor
            by_type = {
                possible.name: self._selected(possible, field, required=True)
                for possible in executor.schema.get_possible_types(named)
            }
            resolve_type = named.resolve_type or executor.type_resolver
            completer = abstract_of(resolve_type, named, field, by_type)
            return (non_null if required else nullable)(completer)
        raise Unsupported(f"type {named}")

    def _selected(
        self, object_type: GraphQLObjectType, field: FieldSpec, *, required: bool
    ) -> Completer:
        """The completer of ``field``'s sub-selection on one object type."""
        executor = self.executor
        collected = collect_subfields(
            executor.schema,
            executor.fragments,
            executor.variable_values,
            executor.operation,
            object_type,
            field.details,
            executor.hide_suggestions,
        )
        return self._object(object_type, collected, field.path, field, required=required)

    def _collect_scopes(self, field_def: GraphQLField) -> None:
        definition = (field_def.extensions or {}).get(_STRAWBERRY_FIELD)
        for extension in getattr(definition, "extensions", ()):
            if isinstance(extension, PermissionExtension):
                for permission in extension.permissions:
                    if isinstance(permission, HasScope):
                        self.scopes.add(permission.action)


def _strawberry_class(object_type: GraphQLObjectType) -> type | None:
    """The class of ``object_type`` when its ``is_type_of`` is the one Strawberry generates,
    which accepts every instance of it that was not cast to another type."""
    definition = (object_type.extensions or {}).get(_STRAWBERRY_FIELD)
    check = object_type.is_type_of
    if (
        definition is None
        or getattr(definition, "is_type_of", None) is not None
        or not getattr(check, "__qualname__", "").startswith("GraphQLCoreConverter.")
    ):
        return None
    origin = getattr(definition, "origin", None)
    return origin if isinstance(origin, type) else None


def _typename(key: str, name: str) -> Step:
    def get(value: Any, run: Run) -> str:
        return name

    return Step(key, get, resolves=False, completer=nullable(_IDENTITY))


def _identity(value: Any, run: Run) -> Any:
    return value


_IDENTITY = Completer(_identity, is_async=False)


def _getter(field: FieldSpec, schema: Any) -> tuple[Getter, str | None]:
    """How to get the field's value from its parent, and the attribute it reads (None: it
    calls the field's resolver). ``schema``: the Strawberry schema, if there is one."""
    resolve = field.field_def.resolve
    if resolve is None:
        raise Unsupported("field without a resolve function")
    definition = (field.field_def.extensions or {}).get(_STRAWBERRY_FIELD)
    if definition is not None and getattr(resolve, "_is_default", False) and _is_plain(definition):
        # Strawberry's resolver of a field without one: default_resolver(source, python_name).
        read = definition.default_resolver
        name = definition.python_name

        def get_attribute(value: Any, run: Run) -> Any:
            return read(value, name)

        return get_attribute, name if read is getattr else None

    direct = _direct_call(field, definition, schema)
    if direct is not None:
        return direct, None

    def get_resolved(value: Any, run: Run) -> Any:
        return resolve(value, run.info(field), **run.arguments(field))

    return get_resolved, None


def _direct_call(field: FieldSpec, definition: Any, schema: Any) -> Getter | None:
    """The field's resolver called as Strawberry's resolver calls it, without the wrapper's
    per-call work, when that work is known to change nothing: arguments converted by a
    compiled converter, no exception handlers, and no field extension but scope checks,
    which pass on every plan run (a plan runs only for a token with all its scopes)."""
    if (
        schema is None
        or not isinstance(definition, StrawberryField)
        or definition.base_resolver is None
    ):
        return None
    converter = schema.schema_converter
    if converter._get_field_exception_handlers(definition) or not all(
        type(extension) is PermissionExtension
        and all(isinstance(permission, HasScope) for permission in extension.permissions)
        for extension in definition.extensions
    ):
        return None
    convert = arguments_converter(definition, schema.config, converter.scalar_registry)
    if convert is None:
        return None
    resolver = definition.base_resolver
    takes_self = resolver.self_parameter is not None
    parent = resolver.parent_parameter
    root = resolver.root_parameter
    info = resolver.info_parameter
    source_names = [p.name for p in (parent, root) if p is not None]
    info_name = None if info is None else info.name
    make_info = schema.config.info_class
    call = resolver.wrapped_func
    if not callable(call):
        return None

    def get_direct(value: Any, run: Run) -> Any:
        kwargs = convert(run.arguments(field))
        for name in source_names:
            kwargs[name] = value
        if info_name is not None:
            kwargs[info_name] = make_info(_raw_info=run.info(field), _field=definition)
        return call(value, **kwargs) if takes_self else call(**kwargs)

    return get_direct


def _is_plain(definition: Any) -> bool:
    return (
        getattr(definition, "base_resolver", True) is None
        and callable(getattr(definition, "default_resolver", None))
        and isinstance(getattr(definition, "python_name", None), str)
    )
