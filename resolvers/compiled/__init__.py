"""Compiled execution of GraphQL queries: the read path without graphql-core's per-field work.

A validated query operation is compiled once (per document, operation name and the values of
the variables its ``@include``/``@skip`` directives read) into a tree of completers, which
call the schema's own resolvers and build the response dicts directly. Strawberry still
parses, validates, coerces variables and runs every schema extension (usage log, metrics,
error codes); only the execution of a plan's fields is replaced. Anything a plan does not
cover, and any run that meets an error, is executed by graphql-core as before
(``CompiledExecutor``), so answers and errors are graphql-core's own.
"""
