"""Signed resume URLs: a token bound to (execution, wait, suffix, action).

The token is ``{wait}.{signature}``: the wait number in clear (it is not in the path) and an
itsdangerous HMAC-SHA256 signature over ``execution/wait/suffix/action``. Several secret keys
can be configured, newest first: new URLs are signed with the newest, and a URL signed with
any configured key verifies, so keys rotate without breaking live URLs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from itsdangerous import Signer

from gateway.config import Secret

SALT = "waitgate.resume-url"


class Action(StrEnum):
    """What a signed URL lets its holder do; one action's token never verifies for another."""

    RESUME = "resume"
    FORM = "form"
    APPROVAL = "approval"
    CANCEL = "cancel"


@dataclass(frozen=True)
class SignedTarget:
    """What a valid token names."""

    execution_id: int
    wait_seq: int


class ResumeSigner:
    """Makes and checks resume URL tokens."""

    def __init__(self, keys: tuple[Secret, ...], public_url: str) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed to sign resume URLs")
        # itsdangerous takes keys oldest first and signs with the last one.
        self._signer = Signer(
            [k.reveal() for k in reversed(keys)],
            salt=SALT,
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )
        self._public_url = public_url.rstrip("/")

    @staticmethod
    def _message(execution_id: int, seq: int, suffix: str, action: Action) -> bytes:
        return f"{execution_id}/{seq}/{suffix}/{action.value}".encode()

    def token(
        self, execution_id: int, seq: int, suffix: str = "", action: Action = Action.RESUME
    ) -> str:
        """The ``signature`` query value for one wait."""
        signature = self._signer.get_signature(self._message(execution_id, seq, suffix, action))
        return f"{seq}.{signature.decode()}"

    def verify(
        self, execution_id: int, token: str, suffix: str = "", action: Action = Action.RESUME
    ) -> SignedTarget | None:
        """The wait a token names, or ``None`` if it was not made by us for this exact target."""
        seq_text, dot, signature = token.partition(".")
        if not dot or not (seq_text.isascii() and seq_text.isdigit()) or len(seq_text) > 9:
            return None
        if seq_text != str(int(seq_text)):
            return None  # one wait, one token: no leading zeros
        seq = int(seq_text)
        message = self._message(execution_id, seq, suffix, action)
        if not self._signer.verify_signature(message, signature.encode()):
            return None
        return SignedTarget(execution_id, seq)

    def form_url(self, execution_id: int, seq: int) -> str:
        """``{PUBLIC_URL}/form-waiting/{id}?signature=…``: the form of a form wait."""
        token = self.token(execution_id, seq, "", Action.FORM)
        return f"{self._public_url}/form-waiting/{execution_id}?signature={token}"

    def approval_url(self, execution_id: int, seq: int) -> str:
        """``{PUBLIC_URL}/approval/{id}?signature=…``: the page of an approval wait."""
        token = self.token(execution_id, seq, "", Action.APPROVAL)
        return f"{self._public_url}/approval/{execution_id}?signature={token}"

    def resume_url(self, execution_id: int, seq: int, suffix: str = "") -> str:
        """``{PUBLIC_URL}/webhook-waiting/{id}[/{suffix}]?signature=…``."""
        path = f"{self._public_url}/webhook-waiting/{execution_id}"
        if suffix:
            path += "/" + quote(suffix, safe="/")
        return f"{path}?signature={self.token(execution_id, seq, suffix)}"
