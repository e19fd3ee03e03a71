"""Argument names converted once: Strawberry's name converter, remembering its answers.

Strawberry's resolver wrapper converts every argument's Python name to its GraphQL name on
every call (``convert_arguments``), camel-casing the same strings again: ~2 % of the nested
read, which calls ``Thread.messages`` 20 times per request. An argument's GraphQL name is
fixed once the schema is built (its own ``graphql_name`` or its Python name under the
config's naming), so ``CachedNameConverter`` keeps each argument's answer.
"""

from __future__ import annotations

from strawberry.schema.name_converter import NameConverter
from strawberry.types.arguments import StrawberryArgument


class CachedNameConverter(NameConverter):
    """``NameConverter`` whose ``from_argument`` is computed once per argument object."""

    def __init__(self, auto_camel_case: bool = True) -> None:
        super().__init__(auto_camel_case)
        # By identity; the argument is kept in the entry so that its id is never reused.
        self._arguments: dict[int, tuple[StrawberryArgument, str]] = {}

    def from_argument(self, argument: StrawberryArgument) -> str:
        entry = self._arguments.get(id(argument))
        if entry is not None and entry[0] is argument:
            return entry[1]
        name = super().from_argument(argument)
        self._arguments[id(argument)] = (argument, name)
        return name
