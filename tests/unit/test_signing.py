"""Resume URL tokens: bound to execution, wait, suffix and action; keys rotate."""

from __future__ import annotations

import pytest

from gateway.config import Secret
from gateway.signing import Action, ResumeSigner, SignedTarget

OLD, NEW = Secret("old-key"), Secret("new-key")


def signer(*keys: Secret) -> ResumeSigner:
    return ResumeSigner(keys, "https://gw.example/")


def test_token_round_trips_to_its_wait() -> None:
    s = signer(NEW)
    assert s.verify(7, s.token(7, 3, "cb")) is None  # suffix is part of what is signed
    assert s.verify(7, s.token(7, 3, "cb"), "cb") == SignedTarget(7, 3)


@pytest.mark.parametrize(
    ("execution_id", "suffix", "action"),
    [(8, "cb", Action.RESUME), (7, "other", Action.RESUME), (7, "cb", Action.CANCEL)],
)
def test_token_does_not_verify_for_another_target(
    execution_id: int, suffix: str, action: Action
) -> None:
    s = signer(NEW)
    token = s.token(7, 3, "cb")
    assert s.verify(execution_id, token, suffix, action) is None


def test_changing_the_wait_number_breaks_the_signature() -> None:
    s = signer(NEW)
    _, _, signature = s.token(7, 3).partition(".")
    assert s.verify(7, f"4.{signature}") is None


@pytest.mark.parametrize("token", ["", "3", "3.", ".abc", "x.abc", "3.abc", "9999999999.abc"])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert signer(NEW).verify(7, token) is None


def test_a_token_has_one_spelling() -> None:
    s = signer(NEW)
    token = s.token(7, 3)
    assert s.verify(7, "0" + token) is None
    assert s.verify(7, "\u0663" + token[1:]) is None  # ARABIC-INDIC DIGIT THREE


def test_rotation_keeps_old_urls_valid_until_the_key_is_removed() -> None:
    old_token = signer(OLD).token(7, 1)
    rotated = signer(NEW, OLD)
    assert rotated.verify(7, old_token) == SignedTarget(7, 1)
    assert rotated.token(7, 1) == signer(NEW).token(7, 1)  # new URLs use the newest key
    assert signer(NEW).verify(7, old_token) is None


def test_resume_url_shape() -> None:
    s = signer(NEW)
    assert (
        s.resume_url(12, 2) == f"https://gw.example/webhook-waiting/12?signature={s.token(12, 2)}"
    )
    assert s.resume_url(12, 2, "a/b").startswith("https://gw.example/webhook-waiting/12/a/b?")


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="secret key"):
        ResumeSigner((), "http://x")


def test_secret_repr_hides_the_value() -> None:
    assert "old-key" not in repr(OLD)
    assert "old-key" not in str(OLD)
    assert OLD.reveal() == "old-key"
