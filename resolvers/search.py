"""Full-text search conditions over the ``message_search`` table (migration 0002).

The user's text is never handed to a query language as is: it is split on whitespace and every
term must match (AND). SQLite gets each term as a quoted FTS5 string; PostgreSQL gets the text
through ``plainto_tsquery('simple', ...)``, which cannot fail on punctuation. Both match whole
words of subject, addresses, snippet and text body, without stemming.
"""

from __future__ import annotations

from resolvers.sql import Statement

MAX_SEARCH_LENGTH = 500


def fts5_query(text: str) -> str:
    """Each whitespace-separated term as an FTS5 string (quotes doubled); all are required."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in text.split())


def search_condition(sql: Statement, text: str, id_column: str) -> str | None:
    """A condition keeping the messages whose document matches ``text``; None for no terms."""
    if not text.split():
        return None
    if sql.postgres:
        query = f"plainto_tsquery('simple', {sql(text)})"
        return f"{id_column} IN (SELECT message_id FROM message_search WHERE document @@ {query})"  # noqa: S608 (constant text; values are parameters)
    return (
        f"{id_column} IN (SELECT rowid FROM message_search "  # noqa: S608 (constant text; values are parameters)
        f"WHERE message_search MATCH {sql(fts5_query(text))})"
    )
