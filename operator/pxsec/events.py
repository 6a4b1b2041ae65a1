"""A Kubernetes Event the operator wants posted on a PxSecurity: a plain value, decided by the core and
the steps, posted by the reconciler through the gateway. Messages name Secrets and fingerprints, never
values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str
