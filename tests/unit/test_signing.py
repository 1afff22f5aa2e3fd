"""Resume URL tokens: bound to execution, nonce, wait, suffix and action; one spelling; keys
rotate."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import Signer

from gateway.config import Secret
from gateway.signing import LEGACY_SALT, SALT, Action, ResumeSigner, SignedTarget, _Key

OLD, NEW = Secret("old-key"), Secret("new-key")
NONCE, OTHER_NONCE = "0123456789abcdef" * 2, "f" * 32


def signer(*keys: Secret) -> ResumeSigner:
    return ResumeSigner(keys, "https://gw.example/")


def test_token_round_trips_to_its_wait() -> None:
    s = signer(NEW)
    token = s.token(7, NONCE, 3, "cb")
    assert token.startswith(f"3.{NONCE}.")
    assert s.verify(7, token) is None  # suffix is part of what is signed
    assert s.verify(7, token, "cb") == SignedTarget(7, 3, NONCE)


@pytest.mark.parametrize(
    ("execution_id", "suffix", "action"),
    [(8, "cb", Action.RESUME), (7, "other", Action.RESUME), (7, "cb", Action.APPROVAL)],
)
def test_token_does_not_verify_for_another_target(
    execution_id: int, suffix: str, action: Action
) -> None:
    s = signer(NEW)
    token = s.token(7, NONCE, 3, "cb")
    assert s.verify(execution_id, token, suffix, action) is None


def test_changing_the_wait_number_or_the_nonce_breaks_the_signature() -> None:
    s = signer(NEW)
    _, nonce, signature = s.token(7, NONCE, 3).split(".")
    assert s.verify(7, f"4.{nonce}.{signature}") is None
    assert s.verify(7, f"3.{OTHER_NONCE}.{signature}") is None
    assert s.verify(7, f"3.{signature}") is None  # dropping the nonce


@pytest.mark.parametrize(
    "token",
    ["", "3", "3.", ".abc", "x.abc", "3.abc", "9999999999.abc", f"3.{NONCE}.", f"3.{NONCE}.x.y"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert signer(NEW).verify(7, token) is None


def test_a_token_has_one_spelling() -> None:
    s = signer(NEW)
    token = s.token(7, NONCE, 3)
    head, _, signature = token.rpartition(".")
    standard = next(  # a token whose base64 has a character that the standard alphabet spells
        t for t in (s.token(7, NONCE, n) for n in range(1, 200)) if "-" in t.rpartition(".")[2]
    )
    for other in [
        "0" + token,
        "\u0663" + token[1:],  # ARABIC-INDIC DIGIT THREE
        token + "=",
        token + "!!!!",
        f"{head}.{signature[:5]}\n\n\n\n{signature[5:]}",
        f"{head}.{signature[:-1]}{chr(ord(signature[-1]) ^ 1)}",
        f"3.{NONCE.upper()}.{signature}",
        standard.replace("-", "+"),
    ]:
        assert s.verify(7, other) is None, other


def test_executions_from_before_nonces_keep_their_old_tokens() -> None:
    legacy = Signer(
        [OLD.reveal()], salt=LEGACY_SALT, key_derivation="hmac", digest_method=hashlib.sha256
    )
    issued = "2." + legacy.get_signature(b"7/2/cb/resume").decode()  # as ba4907e made them
    s = signer(OLD)
    assert s.token(7, "", 2, "cb") == issued
    assert s.verify(7, issued, "cb") == SignedTarget(7, 2, "")
    assert s.verify(7, issued + "=", "cb") is None


def test_rotation_keeps_old_urls_valid_until_the_key_is_removed() -> None:
    old_token = signer(OLD).token(7, NONCE, 1)
    rotated = signer(NEW, OLD)
    assert rotated.verify(7, old_token) == SignedTarget(7, 1, NONCE)
    assert rotated.token(7, NONCE, 1) == signer(NEW).token(7, NONCE, 1)  # newest key signs
    assert signer(NEW).verify(7, old_token) is None


def test_url_shapes() -> None:
    s = signer(NEW)
    token = s.token(12, NONCE, 2)
    assert s.resume_url(12, NONCE, 2) == f"https://gw.example/webhook-waiting/12?signature={token}"
    assert s.resume_url(12, NONCE, 2, "a/b").startswith(
        "https://gw.example/webhook-waiting/12/a/b?"
    )
    form = s.token(12, NONCE, 2, "", Action.FORM)
    assert s.form_url(12, NONCE, 2) == f"https://gw.example/form-waiting/12?signature={form}"
    approval = s.token(12, NONCE, 2, "", Action.APPROVAL)
    assert s.approval_url(12, NONCE, 2) == f"https://gw.example/approval/12?signature={approval}"


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="secret key"):
        ResumeSigner((), "http://x")


def test_secret_repr_hides_the_value() -> None:
    assert "old-key" not in repr(OLD)
    assert "old-key" not in str(OLD)
    assert OLD.reveal() == "old-key"


@pytest.mark.parametrize("message", [b"", b"7/1/" + b"a" * 32 + b"//resume", b"x" * 5000])
def test_signatures_are_exactly_itsdangerous_ones(message: bytes) -> None:
    """The signer keeps its derived key; what it makes is still itsdangerous's signature."""
    reference = Signer(
        "a-key", salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256
    ).get_signature(message)
    assert _Key(Secret("a-key"), SALT).get_signature(message) == reference
