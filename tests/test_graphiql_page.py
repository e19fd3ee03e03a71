"""GraphiQL renders from our own static files, with nothing loaded from outside this machine.

The unit tests read the page and the vendored files. The browser tests serve the page the way
the API serves it (a Strawberry ``GraphQL`` app whose ``render_graphql_ide`` returns
``graphiql_html()``, next to ``StaticFiles`` at ``/static/graphiql``) over real HTTP and load it
in headless Chromium, where no host but 127.0.0.1 resolves. Strawberry's stock page, served by
the same server, is the control: offline it must stay at "Loading..." and its CDN requests
must show up in the request log, or the browser test would prove nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL

from app.graphiql import GRAPHIQL_MOUNT_PATH, GRAPHIQL_STATIC_DIR, graphiql_html
from emulators.runner import RunningServer, serve_in_thread
from tests.support.browser import ChromiumMissingError, RenderedPage, load_page, require_chromium

VENDORED_FILES = {
    "react.production.min.js",
    "react-dom.production.min.js",
    "js.cookie.min.js",
    "graphiql.min.js",
    "graphiql.min.css",
    "graphiql-plugin-explorer.umd.js",
    "graphiql-plugin-explorer.css",
}


class _Assets(HTMLParser):
    """Collects every URL-valued attribute of the page, and integrity per script/stylesheet."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.integrity: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name in ("src", "href", "action", "poster", "data"):
            if name in values:
                self.urls.append(values[name])
        url = values.get("src") or values.get("href")
        if tag in {"script", "link"} and url and "integrity" in values:
            self.integrity[url] = values["integrity"]


def _assets() -> _Assets:
    parser = _Assets()
    parser.feed(graphiql_html())
    return parser


# --- the page and its files -------------------------------------------------------------------


def test_graphiql_html_is_read_once_from_the_static_dir() -> None:
    assert (GRAPHIQL_STATIC_DIR / "index.html").is_file()
    assert graphiql_html() is graphiql_html()
    assert graphiql_html() == (GRAPHIQL_STATIC_DIR / "index.html").read_text(encoding="utf-8")


def test_page_references_no_external_host() -> None:
    page = graphiql_html()
    assets = _assets()
    assert assets.urls, "the page should reference its scripts and stylesheets"
    for url in assets.urls:
        if url.startswith("data:"):
            continue
        parts = urlsplit(url)
        assert not parts.scheme, f"{url}: absolute URL in the page"
        assert not parts.netloc, f"{url}: names a host"
        assert url.startswith(f"{GRAPHIQL_MOUNT_PATH}/"), f"{url}: outside {GRAPHIQL_MOUNT_PATH}"
    # Anywhere else in the text (inline script, CSS, comments): only the SVG namespace.
    hosts = set(re.findall(r"(?:https?:)?//([A-Za-z0-9.-]+\.[A-Za-z]{2,})", html.unescape(page)))
    assert hosts <= {"www.w3.org"}, f"external hosts in the page: {sorted(hosts)}"
    assert "@import" not in page


def test_every_vendored_file_is_loaded_with_its_sha384_integrity() -> None:
    integrity = _assets().integrity
    loaded = {url.removeprefix(f"{GRAPHIQL_MOUNT_PATH}/") for url in integrity}
    assert loaded == VENDORED_FILES
    for url, expected in integrity.items():
        path = GRAPHIQL_STATIC_DIR / url.removeprefix(f"{GRAPHIQL_MOUNT_PATH}/")
        digest = base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()
        assert expected == f"sha384-{digest}", f"{path.name} does not match its integrity value"
    assert not list(GRAPHIQL_STATIC_DIR.glob("*.map")), "source maps are not shipped"
    notice = (GRAPHIQL_STATIC_DIR / "NOTICE").read_text(encoding="utf-8")
    for name in ("react 18.2.0", "react-dom 18.2.0", "js-cookie 3.0.5", "graphiql 3.8.3"):
        assert f"{name} — MIT" in notice
    assert "@graphiql/plugin-explorer 1.0.2 — MIT" in notice


def test_page_keeps_strawberrys_fetcher_and_guards_the_token() -> None:
    page = graphiql_html()
    # Strawberry's HTTP + graphql-transport-ws fetcher, at the URL the page is served from.
    assert "GraphiQL.createFetcher(" in page
    assert "subscriptionUrl" in page
    assert "httpUrlToWebSockeUrl(fetchURL)" in page
    # The prefilled header, and no persisting of the bearer token in localStorage.
    assert '{ Authorization: "Bearer <paste your token>" }' in page
    assert "shouldPersistHeaders: false" in page
    assert "shouldPersistHeaders: true" not in page
    # Cookies are only read (the CSRF token strawberry's page forwards), never written.
    assert "Cookies.set" not in page
    assert "document.cookie" not in page


# --- in a real browser ------------------------------------------------------------------------


@strawberry.type
class _Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


class _OurGraphQL(GraphQL):
    """Serves the page exactly as app.server is meant to: our template, not strawberry's."""

    async def render_graphql_ide(self, request: StarletteRequest) -> Response:
        return HTMLResponse(graphiql_html())


@pytest.fixture(scope="module")
def graphiql_server() -> Iterator[RunningServer]:
    schema = strawberry.Schema(query=_Query)
    ours = _OurGraphQL(schema)
    stock = GraphQL(schema)  # strawberry's own CDN page: the control
    app = Starlette(
        routes=[
            Mount(GRAPHIQL_MOUNT_PATH, StaticFiles(directory=GRAPHIQL_STATIC_DIR)),
            Route("/graphql", ours),
            WebSocketRoute("/graphql", ours),
            Route("/stock-graphql", stock),
        ]
    )
    with serve_in_thread(app) as server:
        yield server


def _chromium_or_fail() -> None:
    """Fail (never skip) a browser test on a machine without Chromium, saying how to fix it."""
    try:
        require_chromium()
    except ChromiumMissingError as error:
        message = str(error)
    else:
        return
    pytest.fail(f"{message} (browser tests never skip)", pytrace=False)


def _paths(page: RenderedPage, method: str = "GET") -> set[str]:
    return {urlsplit(r.url).path for r in page.page_requests() if r.method == method}


@pytest.mark.browser
def test_graphiql_renders_offline_from_our_static_files(graphiql_server: RunningServer) -> None:
    _chromium_or_fail()
    page = load_page(f"{graphiql_server.base_url}/graphql")

    assert "graphiql-container" in page.dom
    assert "graphiql-query-editor" in page.dom
    assert "CodeMirror" in page.dom, "the query editor did not mount"
    assert "graphiql-execute-button" in page.dom
    assert "Welcome to GraphiQL" in page.dom, "the example query is not in the editor"
    assert "Bearer &lt;paste your token&gt;" in page.dom, "the header editor is not prefilled"
    assert "Loading..." not in page.dom

    outside = [r.url for r in page.page_requests() if not r.is_loopback]
    assert not outside, f"the page tried to load from outside: {outside}"
    assert _paths(page) == {"/graphql"} | {f"{GRAPHIQL_MOUNT_PATH}/{f}" for f in VENDORED_FILES}
    assert _paths(page, "POST") == {"/graphql"}, "GraphiQL did not introspect the schema"


@pytest.mark.browser
def test_control_strawberrys_cdn_page_cannot_render_here(graphiql_server: RunningServer) -> None:
    _chromium_or_fail()
    page = load_page(f"{graphiql_server.base_url}/stock-graphql")

    assert "Loading..." in page.dom
    assert "graphiql-query-editor" not in page.dom
    outside = {r.host for r in page.page_requests() if not r.is_loopback}
    assert outside, "the request log missed the stock page's CDN requests"
