"""sync.providers.gmail_batch: the multipart batch format, answers matched by Content-ID."""

from __future__ import annotations

import json

import pytest

from sync.providers.gmail_batch import MAX_CALLS, decode_batch, encode_batch, new_boundary


def test_encode_numbers_the_calls() -> None:
    body = encode_batch(["/a?format=raw", "/b"], "bnd").decode()
    assert body == (
        "--bnd\r\nContent-Type: application/http\r\nContent-ID: <0>\r\n\r\n"
        "GET /a?format=raw HTTP/1.1\r\n\r\n"
        "--bnd\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\n"
        "GET /b HTTP/1.1\r\n\r\n"
        "--bnd--\r\n"
    )
    with pytest.raises(ValueError, match=r"1\.\.50"):
        encode_batch([], "bnd")
    with pytest.raises(ValueError, match=r"1\.\.50"):
        encode_batch(["/x"] * (MAX_CALLS + 1), "bnd")
    assert new_boundary() != new_boundary()


def part(content_id: str, status: str, body: bytes, *headers: str) -> bytes:
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers])
    return (
        f"--b42\r\nContent-Type: application/http\r\nContent-ID: {content_id}\r\n\r\n".encode()
        + head.encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n"
    )


def test_decode_matches_answers_by_content_id_in_any_order() -> None:
    message = json.dumps({"id": "m1", "raw": "--b42 is only data here"}).encode()
    body = (
        b"preamble to ignore\r\n"
        + part("<response-2>", "429 Too Many Requests", b'{"error": {}}', "Retry-After: 3")
        + part("<response-0>", "200 OK", message, f"Content-Length: {len(message)}")
        + part("<response-1>", "404 Not Found", b"")
        + part("<response-x>", "200 OK", b"{}")  # names no call of ours
        + part("<response-3>", "garbage", b"{}")  # no status
        + b"--b42--\r\nepilogue"
    )
    answers = decode_batch('multipart/mixed; boundary="b42"', body)
    assert sorted(answers) == [0, 1, 2]
    assert answers[0].status_code == 200
    assert answers[0].json() == json.loads(message)
    assert answers[1].status_code == 404
    assert answers[2].status_code == 429
    assert answers[2].headers["retry-after"] == "3"


def test_decode_without_a_boundary_gives_nothing() -> None:
    assert decode_batch("application/json", b"{}") == {}
