"""Signed resume URLs: a token bound to (execution, its nonce, wait, suffix, action).

The token is ``{wait}.{nonce}.{signature}``: the wait number and the execution's nonce in clear
(neither is in the path) and an itsdangerous HMAC-SHA256 signature over
``execution/wait/nonce/suffix/action``. The nonce is random per execution, so a URL names one
execution of one database: after a database reset, or in another deployment that shares the
keys, an execution with the same id has another nonce and the store refuses the old URL.

Executions created before nonces existed have an empty one; their tokens keep the old shape
``{wait}.{signature}`` (signed over ``execution/wait/suffix/action`` with the old salt) and
resume only such executions.

A token has exactly one spelling: ``verify`` makes the token each configured key would make for
the target it names and compares the whole text, so padding, stray characters, unused low bits
of base64, or leading zeros never verify. Several secret keys can be configured, newest first:
new URLs are signed with the newest, and a URL signed with any configured key verifies, so keys
rotate without breaking live URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlencode

from itsdangerous import Signer

from gateway.config import Secret

SALT = "waitgate.resume-url.v2"
LEGACY_SALT = "waitgate.resume-url"
NONCE = re.compile(r"[0-9a-f]{32}")
MAX_SEQ_DIGITS = 9


class Action(StrEnum):
    """What a signed URL lets its holder do; one action's token never verifies for another."""

    RESUME = "resume"
    FORM = "form"
    APPROVAL = "approval"
    INBOX = "inbox"


@dataclass(frozen=True)
class SignedTarget:
    """What a valid token names: a wait of the execution with this nonce."""

    execution_id: int
    wait_seq: int
    nonce: str


class _Key:
    """One secret key under one salt: itsdangerous's ``Signer`` (HMAC key derivation,
    SHA-256), with the derived key's HMAC state made once and copied for each signature
    (itsdangerous derives the key again at every signature; the one-shot ``hmac.digest``
    releases the GIL, which under load hands it to the database threads)."""

    def __init__(self, key: Secret, salt: str) -> None:
        signer = Signer(
            key.reveal(), salt=salt, key_derivation="hmac", digest_method=hashlib.sha256
        )
        self._keyed = hmac.new(signer.derive_key(), digestmod=hashlib.sha256)

    def get_signature(self, value: bytes) -> bytes:
        """Exactly ``Signer.get_signature(value)``."""
        mac = self._keyed.copy()
        mac.update(value)
        return urlsafe_b64encode(mac.digest()).rstrip(b"=")  # itsdangerous's base64_encode


def _signer(key: Secret, salt: str) -> _Key:
    return _Key(key, salt)


class ResumeSigner:
    """Makes and checks resume URL tokens."""

    def __init__(self, keys: tuple[Secret, ...], public_url: str) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed to sign resume URLs")
        self._signers = tuple(_signer(k, SALT) for k in keys)  # newest first
        self._legacy = tuple(_signer(k, LEGACY_SALT) for k in keys)
        self._public_url = public_url.rstrip("/")

    def _token(
        self, index: int, execution_id: int, nonce: str, seq: int, suffix: str, action: Action
    ) -> str:
        """The token key ``index`` makes for one target."""
        if not nonce:
            message = f"{execution_id}/{seq}/{suffix}/{action}"
            signature = self._legacy[index].get_signature(message.encode()).decode()
            return f"{seq}.{signature}"
        message = f"{execution_id}/{seq}/{nonce}/{suffix}/{action}"
        signature = self._signers[index].get_signature(message.encode()).decode()
        return f"{seq}.{nonce}.{signature}"

    def token(
        self,
        execution_id: int,
        nonce: str,
        seq: int,
        suffix: str = "",
        action: Action = Action.RESUME,
    ) -> str:
        """The ``signature`` query value for one wait of the execution with ``nonce``."""
        return self._token(0, execution_id, nonce, seq, suffix, action)

    def verify(
        self, execution_id: int, token: str, suffix: str = "", action: Action = Action.RESUME
    ) -> SignedTarget | None:
        """The wait a token names, or ``None`` unless it is exactly a token we make for this
        target (it does not say whether the nonce is the execution's: the store checks that)."""
        if not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) == 3 and NONCE.fullmatch(parts[1]):
            nonce = parts[1]
        elif len(parts) == 2:
            nonce = ""
        else:
            return None
        seq_text = parts[0]
        if not seq_text.isdigit() or len(seq_text) > MAX_SEQ_DIGITS:
            return None
        seq = int(seq_text)
        given = token.encode()
        matched = False
        for index in range(len(self._signers)):  # every key, so timing does not tell which
            expected = self._token(index, execution_id, nonce, seq, suffix, action).encode()
            matched |= hmac.compare_digest(expected, given)
        return SignedTarget(execution_id, seq, nonce) if matched else None

    def form_url(self, execution_id: int, nonce: str, seq: int) -> str:
        """``{PUBLIC_URL}/form-waiting/{id}?signature=…``: the form of a form wait."""
        token = self.token(execution_id, nonce, seq, "", Action.FORM)
        return f"{self._public_url}/form-waiting/{execution_id}?signature={token}"

    def approval_url(self, execution_id: int, nonce: str, seq: int, approver: str = "") -> str:
        """``{PUBLIC_URL}/approval/{id}?signature=…``: the page of an approval wait; with
        ``approver``, that approver's own page (``?approver=…&signature=…``), whose token is
        signed over the approver's id, so it cannot be turned into another approver's."""
        token = self.token(execution_id, nonce, seq, approver, Action.APPROVAL)
        who = f"approver={quote(approver, safe='')}&" if approver else ""
        return f"{self._public_url}/approval/{execution_id}?{who}signature={token}"

    def _inbox_token(self, index: int, project: str | None, approver: str) -> str:
        message = json.dumps([Action.INBOX.value, project, approver])
        return self._signers[index].get_signature(message.encode()).decode()

    def verify_inbox(self, project: str | None, approver: str, token: str) -> bool:
        """Whether ``token`` is exactly the inbox token of ``approver`` in ``project``."""
        given = token.encode("utf-8", "replace")
        matched = False
        for index in range(len(self._signers)):  # every key, so timing does not tell which
            expected = self._inbox_token(index, project, approver).encode()
            matched |= hmac.compare_digest(expected, given)
        return matched

    def inbox_url(self, project: str | None, approver: str) -> str:
        """``{PUBLIC_URL}/inbox?approver=…[&project=…]&signature=…``: every request waiting on
        ``approver`` in ``project`` (``None``: executions without a project). Not bound to an
        execution and without expiry: it lives as long as the key that signed it."""
        query = {"approver": approver} | ({} if project is None else {"project": project})
        token = self._inbox_token(0, project, approver)
        return f"{self._public_url}/inbox?{urlencode(query)}&signature={token}"

    def resume_url(self, execution_id: int, nonce: str, seq: int, suffix: str = "") -> str:
        """``{PUBLIC_URL}/webhook-waiting/{id}[/{suffix}]?signature=…``."""
        path = f"{self._public_url}/webhook-waiting/{execution_id}"
        if suffix:
            path += "/" + quote(suffix, safe="/")
        return f"{path}?signature={self.token(execution_id, nonce, seq, suffix)}"
