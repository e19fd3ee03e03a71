"""HTML bodies made safe to render: nh3 (ammonia) with an allowlist, remote images marked.

What survives: formatting and layout tags, inline ``style`` limited to an allowlist of CSS
properties (none of which can load a URL), links to http(s)/mailto/tel opened in a new tab
without referrer. What goes: scripts, event handlers, ``javascript:`` and every other scheme,
relative URLs (no ``//host`` tricks, no ``<base>``), forms, frames, objects, SVG and MathML,
``<meta>`` (refresh), ``<link>`` and ``<style>`` (so no ``@import`` or external stylesheet),
comments. Remote images keep their URL in ``data-remote-src`` instead of ``src`` and the
result says it had some, so a frontend shows them only when its user agrees; ``cid:`` images
(inline attachments) stay. The raw HTML is a field of its own for frontends that sandbox it.

This module never fetches anything and never decides who may read a body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nh3

_TAGS = (set(nh3.ALLOWED_TAGS) - {"area", "map"}) | {"font", "tfoot", "big"}
_CLEAN_CONTENT = {
    "script",
    "style",
    "title",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "svg",
    "math",
    "noscript",
    "template",
    "textarea",
    "select",
}
_LAYOUT = {"style", "title", "dir", "lang", "align", "valign", "bgcolor", "width", "height"}
_ATTRIBUTES: dict[str, set[str]] = {
    tag: set(allowed) - {"src"} for tag, allowed in nh3.ALLOWED_ATTRIBUTES.items()
}
_ATTRIBUTES.update(
    {
        "*": _LAYOUT,
        "a": {"href", "hreflang", "name"},
        "img": {"src", "alt", "width", "height", "align", "border"},
        "table": {"border", "cellpadding", "cellspacing", "align", "summary"},
        "td": {"colspan", "rowspan", "nowrap", "align"},
        "th": {"colspan", "rowspan", "nowrap", "align", "scope"},
        "font": {"color", "face", "size"},
        "ol": {"start", "type"},
        "ul": {"type"},
    }
)
_STYLE_PROPERTIES = {
    "background-color",
    "border",
    "border-bottom",
    "border-collapse",
    "border-color",
    "border-left",
    "border-radius",
    "border-right",
    "border-spacing",
    "border-style",
    "border-top",
    "border-width",
    "clear",
    "color",
    "direction",
    "display",
    "float",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-variant",
    "font-weight",
    "height",
    "letter-spacing",
    "line-height",
    "list-style-type",
    "margin",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "margin-top",
    "max-height",
    "max-width",
    "min-height",
    "min-width",
    "padding",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "padding-top",
    "table-layout",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "vertical-align",
    "white-space",
    "width",
    "word-break",
    "word-spacing",
}
# Values that could still reach the network or run code in an old engine, whatever property.
_UNSAFE_STYLE = re.compile(r"url\s*\(|expression\s*\(|@import|\\|behavior|-moz-binding", re.I)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "style" and _UNSAFE_STYLE.search(value):
        return None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes={"http", "https", "mailto", "tel", "cid"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    filter_style_properties=_STYLE_PROPERTIES,
    strip_comments=True,
)

# nh3 serialises canonically: lower-case names, values in double quotes with `"` escaped, so
# a tag is matched whole even when a value contains ">".
_IMG = re.compile(r'<img((?:\s+[^\s="/>]+(?:="[^"]*")?)*)\s*/?>')
_REMOTE_SRC = re.compile(r'(\s)src="(https?://[^"]*)"', re.I)


@dataclass(frozen=True, slots=True)
class SafeHtml:
    html: str
    has_remote_images: bool


def sanitize_html(raw: str) -> SafeHtml:
    """``raw`` made safe to render, remote images held back in ``data-remote-src``."""
    cleaned = _CLEANER.clean(raw)
    remote = False

    def hold_back(match: re.Match[str]) -> str:
        nonlocal remote
        attributes, count = _REMOTE_SRC.subn(r'\1data-remote-src="\2"', match.group(1))
        remote = remote or count > 0
        return f"<img{attributes}>"

    return SafeHtml(_IMG.sub(hold_back, cleaned), remote)
