"""The answer leaves as compact JSON text (orjson), and what orjson refuses still leaves."""

from __future__ import annotations

import json
from typing import Any

import orjson

from app.server.graphql_view import InboxGraphQL


def encoded(app: Any, data: object) -> str:
    view = next(route.endpoint for route in app.app.routes if route.path == "/graphql")
    assert isinstance(view, InboxGraphQL)
    return view.encode_json(data)


def test_answers_are_compact_utf8_json_text(app: Any) -> None:
    data = {"data": {"messages": {"nodes": [{"subject": "Grüße ✓", "unread": True, "n": 3}]}}}
    text = encoded(app, data)
    assert text == '{"data":{"messages":{"nodes":[{"subject":"Grüße ✓","unread":true,"n":3}]}}}'
    assert orjson.loads(text) == data


def test_what_orjson_refuses_is_encoded_by_json(app: Any) -> None:
    for data in ({"subject": "half a pair \ud800"}, {"big": 2**70}):
        text = encoded(app, data)
        assert json.loads(text) == data
