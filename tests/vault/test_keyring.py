import base64
import pickle

import pytest

from vault.errors import KeyRingError, UnknownKeyError
from vault.keyring import KeyRing, format_keyring_string, parse_keyring_string
from vault.keys import generate_key

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
B64_1 = base64.b64encode(KEY_1).decode()
B64_2 = base64.b64encode(KEY_2).decode()


def test_the_first_entry_of_a_key_ring_string_is_primary() -> None:
    ring = parse_keyring_string(f"k2:{B64_2},k1:{B64_1}")

    assert ring.primary_id == "k2"
    assert ring.key_ids == ("k2", "k1")
    assert ring.get("k1").reveal_material() == KEY_1
    assert ring.primary.reveal_material() == KEY_2


def test_spaces_around_entries_are_ignored() -> None:
    ring = parse_keyring_string(f"  k2:{B64_2} ,\n k1:{B64_1}\n")

    assert ring.key_ids == ("k2", "k1")


def test_format_is_the_inverse_of_parse_with_the_primary_first() -> None:
    ring = KeyRing([generate_key("old"), generate_key("new")]).promote("new")

    reparsed = parse_keyring_string(format_keyring_string(ring))

    assert reparsed.primary_id == "new"
    assert reparsed.key_ids == ("new", "old")
    for key in ring:
        assert reparsed.get(key.key_id).reveal_material() == key.reveal_material()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not of the form"),
        (B64_1, "not of the form"),
        (f"k1:{B64_1},", "not of the form"),
        (f"{B64_1}:k1", "invalid key id"),
        (f"k1:{B64_1[:-2]}", "not valid base64"),
        (f"k1:{B64_1[:-1]}*", "not valid base64"),
        (f"k1:{base64.b64encode(KEY_1[:16]).decode()}", "32 bytes"),
        (f"k1:{B64_1},k1:{B64_2}", "appears twice"),
        (f"k 1:{B64_1}", "invalid key id"),
    ],
)
def test_malformed_key_ring_strings_are_refused_without_echoing_keys(
    value: str, message: str
) -> None:
    with pytest.raises(KeyRingError, match=message) as caught:
        parse_keyring_string(value)

    assert B64_1 not in str(caught.value)
    assert B64_1[:20] not in str(caught.value)
    assert caught.value.__cause__ is None


def test_an_unknown_key_id_raises_unknown_key_error() -> None:
    ring = KeyRing([generate_key("k1")])

    with pytest.raises(UnknownKeyError) as caught:
        ring.get("k9")

    assert caught.value.key_id == "k9"
    assert "k9" not in ring
    assert "k1" in ring


def test_a_ring_needs_a_key_and_a_primary_it_holds() -> None:
    with pytest.raises(KeyRingError, match="at least one key"):
        KeyRing([])
    with pytest.raises(UnknownKeyError):
        KeyRing([generate_key("k1")], primary_id="k2")


def test_rotation_steps_return_new_rings_and_leave_the_old_one_alone() -> None:
    ring = KeyRing([generate_key("k1")])

    grown = ring.with_key(generate_key("k2"))
    promoted = grown.promote("k2")
    retired = promoted.without_key("k1")

    assert (ring.key_ids, ring.primary_id) == (("k1",), "k1")
    assert (grown.key_ids, grown.primary_id) == (("k1", "k2"), "k1")
    assert (promoted.key_ids, promoted.primary_id) == (("k1", "k2"), "k2")
    assert (retired.key_ids, retired.primary_id) == (("k2",), "k2")
    assert len(promoted) == 2


def test_a_key_can_be_added_as_primary_in_one_step() -> None:
    ring = KeyRing([generate_key("k1")]).with_key(generate_key("k2"), primary=True)

    assert ring.primary_id == "k2"


def test_adding_an_id_already_held_is_refused() -> None:
    ring = KeyRing([generate_key("k1")])

    with pytest.raises(KeyRingError, match="appears twice"):
        ring.with_key(generate_key("k1"))


def test_promoting_or_removing_an_absent_key_raises_unknown_key_error() -> None:
    ring = KeyRing([generate_key("k1")])

    with pytest.raises(UnknownKeyError):
        ring.promote("k2")
    with pytest.raises(UnknownKeyError):
        ring.without_key("k2")


def test_the_primary_key_cannot_be_removed() -> None:
    ring = KeyRing([generate_key("k1"), generate_key("k2")])

    with pytest.raises(KeyRingError, match="promote another key first"):
        ring.without_key("k1")


def test_repr_of_a_ring_shows_ids_and_never_material() -> None:
    ring = parse_keyring_string(f"k2:{B64_2},k1:{B64_1}")
    shown = f"{ring} {ring!r} {[*ring]}"

    for leak in (B64_1, B64_2, KEY_1.hex(), KEY_2.hex(), repr(KEY_1), repr(KEY_2)):
        assert leak not in shown
    assert repr(ring) == "KeyRing(primary_id='k2', key_ids=('k2', 'k1'))"


def test_a_ring_cannot_be_pickled_or_changed() -> None:
    ring = KeyRing([generate_key("k1")])

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ring)
    with pytest.raises(AttributeError, match="immutable"):
        ring._primary_id = "k2"
