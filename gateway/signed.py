"""The door of every signed URL (resume webhook, approval page, form page): the signature,
and on a page the wait's caller checks.

The signature is verified first, before any limit or database read: it is cheap, and a
correctly signed call is never refused for what others sent. Only a failed check is charged to
the caller's address and to the execution (past either limit it is 429, otherwise 401) and
written to the execution's audit trail.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request

from gateway import metrics
from gateway.caller_auth import checker
from gateway.domain import AttemptOutcome, Execution, Refusal, ResumeAttempt, Wait
from gateway.http import ApiError, client_address
from gateway.payloads import SIGNATURE_PARAM
from gateway.services import Services
from gateway.signing import Action, SignedTarget

log = logging.getLogger("waitgate.signed")
MAX_ID_DIGITS = 18
REFUSED_MESSAGE = "Invalid token"


def invalid_token() -> ApiError:
    """The answer to a URL that is not ours (n8n's wording)."""
    return ApiError(401, REFUSED_MESSAGE, error=REFUSED_MESSAGE)


def audit_attempt(
    svc: Services,
    request: Request,
    execution_id: int,
    seq: int,
    status: int,
    reason: str,
    outcome: AttemptOutcome | None = None,
) -> None:
    """Add one call of a signed URL to the execution's audit trail."""
    svc.audit.record(
        ResumeAttempt(
            execution_id=execution_id,
            seq=seq,
            attempted_at=svc.clock.now_ms(),
            method=request.method,
            status_code=status,
            outcome=outcome or ("accepted" if status < 300 else "refused"),
            reason=reason,
            ip=client_address(request),
            user_agent=request.headers.get("user-agent"),
        )
    )


def execution_id(raw: str) -> int | None:
    """An execution id as a URL spells it: digits, no leading zeros; ``None`` otherwise."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS:
        return None
    return int(raw) if raw == str(int(raw)) else None


def signature_param(request: Request) -> str:
    """The ``signature`` query parameter (read without parsing when it is the only one, as in
    every URL the gateway makes); ``""`` when there is none."""
    raw: bytes = request.scope.get("query_string", b"")
    if raw.startswith(SIGNATURE_PARAM) and b"&" not in raw and b"%" not in raw and b"+" not in raw:
        return raw[len(SIGNATURE_PARAM) :].decode("latin-1")
    return request.query_params.get("signature", "")


def check_signature(
    svc: Services, request: Request, raw_id: str, suffix: str, action: Action
) -> SignedTarget:
    """The wait the request's ``signature`` names for ``action`` on execution ``raw_id``.

    Raises a 401 ``ApiError`` (counted against the caller's address and the execution, and
    audited) when the signature is not valid, or a 429 once either has used up its failed
    checks; a valid signature is never refused here.
    """
    eid = execution_id(raw_id)
    if eid is None:
        raise invalid_token()
    target = svc.signer.verify(eid, signature_param(request), suffix, action)
    if target is not None:
        return target
    metrics.SIGNATURE_FAILURES.inc()
    svc.limits.signature_failed(client_address(request), eid)
    log.info(
        "signature refused",
        extra={"action": f"{action.value}.bad_signature", "execution_id": eid},
    )
    audit_attempt(svc, request, eid, 0, 401, REFUSED_MESSAGE)
    raise invalid_token()


def check_inbox(svc: Services, request: Request, project: str | None, approver: str) -> None:
    """Raise unless the request's ``signature`` is the inbox link's of ``approver`` in
    ``project``: a 401 ``ApiError`` counted against the caller's address and the inbox (there
    is no execution to charge) and logged as ``inbox.bad_signature`` (there is no execution's
    audit trail to write to), or a 429 once either has used up its failed checks."""
    if svc.signer.verify_inbox(project, approver, request.query_params.get("signature", "")):
        return
    metrics.SIGNATURE_FAILURES.inc()
    ip = client_address(request)
    svc.limits.inbox_signature_failed(ip, project, approver)
    log.warning(
        "inbox signature refused",
        extra={"action": "inbox.bad_signature", "approver": approver, "project": project, "ip": ip},
    )
    raise invalid_token()


def issued_for(execution: Execution, nonce: str) -> bool:
    """Whether a verified URL with ``nonce`` was issued for this execution (and not for another
    one with the same id in another database)."""
    return hmac.compare_digest(execution.nonce, nonce)


def caller_refusal(request: Request, svc: Services, wait: Wait) -> Refusal | None:
    """The wait's caller checks (``allowedIps``, Basic, ``ignoreBots``) on a page request; the
    same checks as its resume URL, so a page shows and decides nothing for a caller they refuse.
    Header and HMAC authentication cannot come from a browser and are refused at park. A
    refusal is written to the execution's audit trail, as the resume URL's are."""
    if wait.webhook is None:
        return None
    moment = svc.clock.now_ms() / 1000
    refusal = checker(request.headers, b"", client_address(request), moment)(wait.webhook)
    if refusal is not None:
        audit_attempt(svc, request, wait.execution_id, wait.seq, refusal.status, refusal.message)
    return refusal
