"""The PxSecurity case tables shared by the unit tests (offline verdicts) and the e2e admission test
(the API server's verdicts): one construction, so both judge exactly the same objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CASES = Path(__file__).resolve().parent


def load_rows(name: str) -> list[dict[str, Any]]:
    """The rows of tests/cases/<name>."""
    rows = yaml.safe_load((CASES / name).read_text(encoding="utf-8"))
    assert isinstance(rows, list), f"{name} must be a YAML list of rows"
    return rows


def build_document(row: dict[str, Any]) -> dict[str, Any]:
    """The PxSecurity a row describes: its name as metadata.name, its spec (absent if the row has
    none), and any other top-level fields from `object` laid over them."""
    doc: dict[str, Any] = {
        "apiVersion": "pxsec.dev/v1alpha1",
        "kind": "PxSecurity",
        "metadata": {"name": row["name"]},
    }
    if "spec" in row:
        doc["spec"] = copy.deepcopy(row["spec"])
    doc.update(copy.deepcopy(row.get("object", {})))
    return doc
