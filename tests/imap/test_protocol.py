"""The IMAP wire format without a server: responses, literals, sequence sets, mailbox names."""

from __future__ import annotations

import pytest

from sync.providers.imap_fetch import parse_provider_id, provider_id, read_fetch, thread_id
from sync.providers.imap_protocol import (
    ProtocolError,
    compress,
    decode_mailbox_name,
    encode_mailbox_name,
    expand,
    parse_items,
    parse_response,
    quote,
)


def test_a_fetch_response_with_a_literal_and_a_section_with_spaces() -> None:
    text = (
        b"* 12 FETCH (UID 40 FLAGS (\\Seen $Label1) BODY[HEADER.FIELDS (MESSAGE-ID)] {7} "
        b"MODSEQ (9))"
    )
    response = parse_response(text, [b"abc\r\n()"])
    assert (response.tag, response.kind, response.number) == ("*", "FETCH", 12)
    assert response.items == [
        [
            "UID",
            "40",
            "FLAGS",
            ["\\Seen", "$Label1"],
            "BODY[HEADER.FIELDS (MESSAGE-ID)]",
            b"abc\r\n()",
            "MODSEQ",
            ["9"],
        ]
    ]


def test_read_fetch_takes_uid_flags_date_size_and_body() -> None:
    response = parse_response(
        b'* 1 FETCH (UID 7 FLAGS (\\Flagged) INTERNALDATE " 3-Mar-2024 10:00:00 +0200" '
        b"RFC822.SIZE 5 BODY[] {5})",
        [b"hello"],
    )
    fetched = read_fetch(response)
    assert (fetched.uid, fetched.flags, fetched.size, fetched.raw) == (
        7,
        frozenset({"\\Flagged"}),
        5,
        b"hello",
    )
    assert fetched.internal_date is not None
    assert fetched.internal_date.isoformat() == "2024-03-03T08:00:00+00:00"


def test_status_responses_keep_code_and_text_apart() -> None:
    response = parse_response(b"A3 NO [AUTHENTICATIONFAILED] Authentication failed.")
    assert (response.tag, response.kind, response.code_name) == ("A3", "NO", "AUTHENTICATIONFAILED")
    assert response.text == "Authentication failed."
    ok = parse_response(b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.")
    assert ok.code == ["PERMANENTFLAGS", ["\\Seen", "\\*"]]
    assert parse_response(b"+ idling").tag == "+"


def test_quoted_strings_nil_and_unbalanced_input() -> None:
    assert parse_items(b'("a \\"b\\" \\\\c" NIL) "/"') == [[b'a "b" \\c', None], b"/"]
    with pytest.raises(ProtocolError):
        parse_items(b"(a (b)")
    with pytest.raises(ProtocolError):
        parse_items(b"BODY[] {3}")  # a literal marker without its bytes


def test_sequence_sets_round_trip_and_are_capped() -> None:
    assert compress([5, 1, 2, 3, 9, 10, 3]) == "1:3,5,9:10"
    assert expand("1:3,5,10:9") == [1, 2, 3, 5, 9, 10]
    with pytest.raises(ProtocolError):
        expand("1:4294967295", limit=1000)
    with pytest.raises(ProtocolError):
        expand("1:*")


@pytest.mark.parametrize("name", ["Entwürfe", "日本語/メール", "A&B", "plain", "ça & là"])
def test_modified_utf7_round_trips(name: str) -> None:
    wire = encode_mailbox_name(name)
    assert wire.isascii()
    assert decode_mailbox_name(wire) == name


def test_modified_utf7_known_values() -> None:
    assert encode_mailbox_name("Entwürfe") == "Entw&APw-rfe"
    assert decode_mailbox_name("&ZeVnLIqe-") == "日本語"
    assert decode_mailbox_name("broken&AP") == "broken&AP"  # shown as sent


def test_quote_refuses_line_breaks() -> None:
    assert quote('a"b\\') == '"a\\"b\\\\"'
    with pytest.raises(ValueError, match="CR, LF"):
        quote("a\r\nb")


def test_provider_ids_carry_folder_validity_and_uid() -> None:
    pid = provider_id("Work/Projects:2024", 17, 4711)
    assert pid == "17:4711:Work/Projects:2024"
    assert parse_provider_id(pid) == ("Work/Projects:2024", 17, 4711)
    with pytest.raises(Exception, match="not an IMAP message id"):
        parse_provider_id("gmail-id-123")


def test_threads_follow_references_then_in_reply_to_then_subject() -> None:
    assert thread_id(["<root@x>", "<mid@x>"], "<mid@x>", "<me@x>", "Re: hi", "f") == "<root@x>"
    assert thread_id([], "<parent@x>", "<me@x>", "Re: hi", "f") == "<parent@x>"
    weak = thread_id([], None, "<me@x>", "RE: Fwd:  Quarterly   report", "f")
    assert weak == thread_id([], None, "<other@x>", "re: quarterly report", "g")
    assert weak.startswith("subject:")
    assert thread_id([], None, "<me@x>", "Quarterly report", "f") == "<me@x>"
    assert thread_id([], None, None, "Quarterly report", "fallback") == "fallback"
    long_id = "<" + "x" * 300 + "@example.com>"
    assert thread_id([long_id], None, None, "", "f").startswith("sha256:")
