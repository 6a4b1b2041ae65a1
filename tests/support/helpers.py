"""Small polling helpers shared by the e2e tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pxsec.devcluster.cluster import Cluster


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.25,
             what: str = "condition") -> Any:
    """Poll until `predicate()` returns something truthy; return it. Observes, never sleeps blindly."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def get_json(cluster: Cluster, *args: str) -> dict[str, Any]:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return {}
    loaded: dict[str, Any] = json.loads(result.stdout)  # JSON: YAML readers refuse some characters JSON allows
    return loaded
