"""GraphiQL served from our own static files, so the page works with no CDN and no internet.

Strawberry's built-in GraphiQL page loads React and GraphiQL from a CDN (DESIGN.md: no
third-party assets). ``app/static/graphiql/`` holds the very same files, vendored from npm by
``scripts/vendor-graphiql`` and checked against the integrity values of Strawberry's template,
plus ``index.html``: Strawberry's template pointing at ``/static/graphiql/...``, with an
``Authorization: Bearer`` header prefilled and request headers kept out of localStorage.

The server mounts ``StaticFiles(directory=GRAPHIQL_STATIC_DIR)`` at ``/static/graphiql`` and
returns ``graphiql_html()`` from its ``render_graphql_ide`` override. The template has no
placeholders (Strawberry's has none either): the page derives the HTTP and graphql-transport-ws
URLs from its own location, so serve it at the GraphQL endpoint's path.
"""

from __future__ import annotations

import functools
import pathlib

__all__ = ["GRAPHIQL_MOUNT_PATH", "GRAPHIQL_STATIC_DIR", "graphiql_html"]

GRAPHIQL_STATIC_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent / "static" / "graphiql"
"""Folder of the vendored GraphiQL assets and the page template (``index.html``)."""

GRAPHIQL_MOUNT_PATH = "/static/graphiql"
"""URL path where the page expects ``GRAPHIQL_STATIC_DIR`` to be served (absolute in the HTML)."""


@functools.cache
def graphiql_html() -> str:
    """Return the GraphiQL page, read from ``GRAPHIQL_STATIC_DIR/index.html`` once per process."""
    return (GRAPHIQL_STATIC_DIR / "index.html").read_text(encoding="utf-8")
