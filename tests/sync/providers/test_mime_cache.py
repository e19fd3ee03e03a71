"""``sync.providers.mime`` caches the header registry's readings: a value read a second time (a
cache hit) gives the same addresses, subject and problems as the first time, including defects
and a registry failure, and each message's problems stay its own."""

from __future__ import annotations

from sync.providers.mime import parse_message


def message(headers: str) -> bytes:
    return (headers + "Date: Mon, 2 Jan 2023 10:00:00 +0000\n\nbody\n").encode()


def test_a_repeated_header_value_reads_the_same_with_the_same_problems() -> None:
    broken = message(
        "From: =?utf-8?b?QmrDtnJuIMOFbmdzdHLDtm0=?= <bjorn@example.se>, <bad@@x>\n"
        "Subject: =?utf-8?q?caf=C3=A9?= =?bogus\n"
    )
    first, second = parse_message(broken), parse_message(broken)
    assert first == second
    assert first.parse_error is not None
    assert first.envelope.from_addresses[0].name == "Björn Ångström"


def test_problems_of_one_message_do_not_leak_into_another_with_a_clean_value() -> None:
    broken = parse_message(message("From: <bad@@x>\n"))
    clean = parse_message(message("From: Alice <alice@example.com>\n"))
    again = parse_message(message("From: <bad@@x>\n"))
    assert broken.parse_error is not None
    assert clean.parse_error is None
    assert again.parse_error == broken.parse_error
