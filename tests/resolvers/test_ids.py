"""resolvers.ids: global ids are base64url of "Type:number" without padding, and decode back."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from resolvers.ids import decode_id, decode_typed, encode_id

TYPE_NAMES = st.sampled_from(["Message", "Thread", "Folder", "Account", "Draft", "A"])
NUMBERS = st.integers(min_value=0, max_value=10**19 - 1)


@given(TYPE_NAMES, NUMBERS)
def test_an_id_is_unpadded_base64url_of_type_and_number(type_name: str, number: int) -> None:
    expected = base64.urlsafe_b64encode(f"{type_name}:{number}".encode()).decode().rstrip("=")
    assert encode_id(type_name, number) == expected
    assert decode_id(expected) == (type_name, number)
    assert decode_typed(expected, type_name) == number


def test_ids_that_are_not_ours_decode_to_none() -> None:
    assert decode_id("not base64!") is None
    assert decode_id(encode_id("Message", 1)[:-1] + "*") is None
    assert decode_typed(encode_id("Thread", 7), "Message") is None
    assert decode_id("x" * 65) is None
