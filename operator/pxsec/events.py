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


def coalesce(events: list[Event]) -> list[Event]:
    """One Event per type and reason per reconcile: three Secrets generated at once are one
    `SecretGenerated` saying so, not three API writes (`kubectl describe` reads the same). Order is the
    order of first appearance; messages are joined with "; "."""
    merged: dict[tuple[str, str], list[str]] = {}
    for ev in events:
        messages = merged.setdefault((ev.type, ev.reason), [])
        if ev.message not in messages:
            messages.append(ev.message)
    return [Event(type_, reason, "; ".join(messages)) for (type_, reason), messages in merged.items()]
