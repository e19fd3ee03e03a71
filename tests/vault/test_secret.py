import copy
import hmac
import json
import logging
import pickle

import orjson
import pytest

from vault.secret import MASK, Secret

VALUE = "ya29.refresh-token-value"


def test_reveal_returns_the_value_as_text_and_bytes() -> None:
    secret = Secret(VALUE)

    assert secret.reveal() == VALUE
    assert secret.reveal_bytes() == VALUE.encode()


def test_bytes_and_text_of_the_same_value_are_the_same_secret() -> None:
    assert Secret("pässwörd") == Secret("pässwörd".encode())


def test_str_repr_and_format_never_show_the_value() -> None:
    secret = Secret(VALUE)
    renderings = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret!s}",
        f"{secret:>40}",
        f"{secret:s}",
        "%s %r" % (secret, secret),  # noqa: UP031 - the old formatting path must mask too
        "{}".format(secret),  # noqa: UP032 - str.format is a separate code path
        repr([secret]),
        repr({"token": secret}),
    ]

    for rendering in renderings:
        assert VALUE not in rendering
        assert MASK in rendering
    assert repr(secret) == "Secret('**********')"


def test_logging_a_secret_logs_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("token is %s", Secret(VALUE))

    assert VALUE not in caplog.text
    assert MASK in caplog.text


def test_equality_is_by_value_and_only_between_secrets() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != Secret("aa")
    assert Secret("a") != "a"
    assert Secret(b"a") != b"a"


def test_equality_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def recording_compare(left: bytes, right: bytes) -> bool:
        calls.append((left, right))
        return real_compare(left, right)

    monkeypatch.setattr(hmac, "compare_digest", recording_compare)

    assert Secret("same") == Secret("same")
    assert calls == [(b"same", b"same")]


def test_a_secret_cannot_be_hashed() -> None:
    with pytest.raises(TypeError):
        hash(Secret(VALUE))
    with pytest.raises(TypeError):
        {Secret(VALUE)}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_secret_cannot_be_pickled(protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE), protocol=protocol)


def test_copies_are_the_same_object() -> None:
    secret = Secret(VALUE)

    assert copy.copy(secret) is secret
    assert copy.deepcopy({"token": secret})["token"] is secret


def test_json_refuses_a_secret() -> None:
    with pytest.raises(TypeError):
        json.dumps({"token": Secret(VALUE)})
    with pytest.raises(TypeError):
        orjson.dumps({"token": Secret(VALUE)})


def test_json_with_a_str_fallback_writes_the_mask() -> None:
    dumped = json.dumps({"token": Secret(VALUE)}, default=str)

    assert VALUE not in dumped
    assert MASK in dumped


def test_a_secret_is_immutable_and_has_no_dict() -> None:
    secret = Secret(VALUE)

    with pytest.raises(AttributeError):
        secret._value = b"other"
    with pytest.raises(AttributeError):
        del secret._value
    with pytest.raises(TypeError):
        vars(secret)
    assert secret.reveal() == VALUE


def test_revealing_binary_as_text_fails_without_quoting_the_bytes() -> None:
    with pytest.raises(ValueError, match="reveal_bytes") as caught:
        Secret(b"\xfe\xed").reveal()

    assert "fe" not in str(caught.value).lower()
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_only_str_and_bytes_can_be_wrapped() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        Secret(1234)  # type: ignore[arg-type]
