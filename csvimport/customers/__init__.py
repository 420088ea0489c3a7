"""Provisioning customer orgs by file (SPEC section 11): templates, create, attach, approve.

The partner's side of seeds 002 and 004, through the users' pipeline (read → validate → plan →
apply → report) with a catalogue of its own (``schemas/customers.yaml``). Modules: ``catalog``
(the schema), ``codes`` (issue codes), ``templates`` (onboarding templates), ``validate``
(cells), ``store`` (bulk reads), ``plan`` (pure diff), ``apply`` (one transaction), ``job``
(one job end to end). ``batch_job`` is the drop-folder worker's entry for ``_customers``.
"""

from __future__ import annotations

from csvimport.customers import codes as _codes  # registers the customer issue codes
from csvimport.customers.job import approve, batch_job, run

__all__ = ["_codes", "approve", "batch_job", "run"]
