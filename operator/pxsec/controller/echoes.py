"""The echoes of our own writes: the watch event that follows each write this process made carries the
resourceVersion the write returned. Such an event tells the operator nothing it does not know, so it
must not wake a second reconcile (before this, every object was reconciled twice, the second pass
reading everything again to find nothing to do). Any other change — someone else's write, a delete —
carries another resourceVersion and wakes the object as before; an echo that arrives before its write's
response is recorded merely costs the old extra pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

Key = tuple[str, str, str]  # (kind, namespace, name)

MAX_REMEMBERED = 20_000  # a bound, in case an echo never arrives (the watch restarted meanwhile)


class Echoes:
    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._written: OrderedDict[Key, str] = OrderedDict()
        self._lock = threading.Lock()  # written from reconcile threads, read on the event loop
        self._limit = limit

    def wrote(self, kind: str, namespace: str, name: str, resource_version: object) -> None:
        if not resource_version:
            return
        with self._lock:
            self._written[(kind, namespace, name)] = str(resource_version)
            self._written.move_to_end((kind, namespace, name))
            while len(self._written) > self._limit:
                self._written.popitem(last=False)

    def is_echo(self, kind: str, namespace: str, name: str, resource_version: object) -> bool:
        """True (once) when this event is the echo of our last write of that object."""
        key = (kind, namespace, name)
        with self._lock:
            if resource_version and self._written.get(key) == str(resource_version):
                del self._written[key]
                return True
            return False


ECHOES = Echoes()  # one per process: the gateway records, the kopf handlers ask
