"""waitgate for Apache Airflow 3.

- ``operators.WaitgateOperator`` (with ``triggers.WaitgateTrigger``): a deferrable task that
  parks a webhook, approval or form wait in waitgate and resumes with its payload, or with its
  ``default`` at the deadline. It needs no relay: its trigger reads the wait from waitgate.
- ``notifier.WaitgateNotifier``: Airflow's HITL operators (``ApprovalOperator``,
  ``HITLOperator``) publish their request to waitgate as an approval.
- ``relay_adapter``: for ``waitgate relay --engine airflow``, which answers those HITL requests
  through Airflow's REST API. Importing this package (as the relay does) needs no Airflow; the
  operator, trigger and notifier modules do (``pip install 'waitgate[airflow]'``).
"""

from __future__ import annotations

from gateway.integrations.airflow.hitl_relay import AirflowApi, AirflowHitlAdapter, relay_adapter

__all__ = ["AirflowApi", "AirflowHitlAdapter", "relay_adapter"]
