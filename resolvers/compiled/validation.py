"""Validation cached by query text: Strawberry's ValidationCache without hashing the tree.

Strawberry's ``ValidationCache`` keys its LRU cache on the parsed ``DocumentNode``, and a
node's hash walks the whole syntax tree: every request paid for it (4-6 % of a read). The
errors of validation depend only on the schema, the document and the rules, and the document
only on the query text and the parse options, so ``TextValidationCache`` keys on those
instead. A request whose document did not come from a query text is validated without the
cache, as Strawberry itself would.

The documents that passed are kept by query text too: ``accepted_document`` lets the direct
read path (``resolvers.compiled.direct``) skip parsing and validation for a text the schema's
own pipeline accepted, and only for such a text.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


class ValidationResults:
    """A bounded, least recently used map from a validation key to its errors, and the
    documents that passed, by schema and query text (``accepted_document``)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._errors: OrderedDict[Hashable, list[GraphQLError]] = OrderedDict()
        self._accepted: OrderedDict[tuple[GraphQLSchema, str], DocumentNode] = OrderedDict()

    def get(self, key: Hashable) -> list[GraphQLError] | None:
        errors = self._errors.get(key)
        if errors is None:
            self.misses += 1
            return None
        self.hits += 1
        self._errors.move_to_end(key)
        return errors

    def put(self, key: Hashable, errors: list[GraphQLError]) -> None:
        _bounded_put(self._errors, key, errors, self.maxsize)

    def accept(self, schema: GraphQLSchema, query: str, document: DocumentNode) -> None:
        _bounded_put(self._accepted, (schema, query), document, self.maxsize)

    def accepted(self, schema: GraphQLSchema, query: str) -> DocumentNode | None:
        return self._accepted.get((schema, query))


def _bounded_put(entries: OrderedDict[Any, Any], key: Any, value: Any, maxsize: int) -> None:
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > maxsize:
        entries.popitem(last=False)


_RESULTS: dict[int, ValidationResults] = {}


def accepted_document(schema: GraphQLSchema, query: str) -> DocumentNode | None:
    """The parsed document of ``query`` if the schema's own pipeline (its parser, token limit
    and validation rules) accepted it before, else None: only that pipeline decides."""
    for results in _RESULTS.values():
        document = results.accepted(schema, query)
        if document is not None:
            return document
    return None


def validation_results(maxsize: int) -> ValidationResults:
    """The cache shared by every ``TextValidationCache(maxsize)`` (extensions are per request)."""
    results = _RESULTS.get(maxsize)
    if results is None:
        results = _RESULTS[maxsize] = ValidationResults(maxsize)
    return results


class TextValidationCache(SchemaExtension):
    """Validate a query text once per schema, parse options and rules."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self._results = validation_results(maxsize)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None
        if context.query is None:
            context.pre_execution_errors = validate_document(
                context.schema._schema, document, context.validation_rules
            )
            yield
            return
        key = (
            context.schema._schema,
            context.query,
            tuple(sorted(context.parse_options.items())),
            context.validation_rules,
        )
        errors = self._results.get(key)
        if errors is None:
            errors = validate_document(context.schema._schema, document, context.validation_rules)
            self._results.put(key, errors)
        if not errors:
            # The schema's extensions fix the parse options and the rules: a text that
            # passed once passes every time.
            self._results.accept(context.schema._schema, context.query, document)
        context.pre_execution_errors = errors
        yield
