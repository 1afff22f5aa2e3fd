"""What the routes work with: one object built in the lifespan and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.audit import AuditTrail
from gateway.auth import Authenticator
from gateway.clock import Clock
from gateway.config import Settings
from gateway.delivery import Dispatcher
from gateway.gauges import DatabaseGauges
from gateway.held import HeldCallers
from gateway.ratelimit import Limits
from gateway.retention import Pruner
from gateway.scheduler import Scheduler
from gateway.signing import ResumeSigner
from gateway.supervisor import Supervisor
from persistence.base import Store


@dataclass
class Services:
    """The gateway's collaborators."""

    settings: Settings
    store: Store
    clock: Clock
    signer: ResumeSigner
    scheduler: Scheduler
    dispatcher: Dispatcher
    held: HeldCallers
    auth: Authenticator
    audit: AuditTrail
    pruner: Pruner
    limits: Limits
    gauges: DatabaseGauges
    supervisor: Supervisor


def services(request: Request) -> Services:
    """The ``Services`` of the app serving ``request``."""
    found: Services = request.app.state.services
    return found
