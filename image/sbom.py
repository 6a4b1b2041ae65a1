"""A CycloneDX 1.5 SBOM of the image's root filesystem, without a scanner: the Debian packages from dpkg's
status file (kept in the image for exactly this, and for scanners such as Trivy or Grype) and the Python
distributions from their *.dist-info/METADATA.

Deterministic, as the image is: components sorted by purl, the serial number derived from the content,
the timestamp SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from image.rootfs import parse_status


def debian_components(root: Path) -> list[dict[str, Any]]:
    os_release = dict(line.split("=", 1) for line in (root / "etc/os-release").read_text().splitlines() if "=" in line)
    distro = "debian-" + os_release.get("VERSION_ID", "").strip('"')
    out = []
    for name, fields in sorted(parse_status(root / "var/lib/dpkg/status").items()):
        version, arch = fields["Version"], fields.get("Architecture", "all")
        purl = f"pkg:deb/debian/{name}@{version.replace(':', '%3A')}?arch={arch}&distro={distro}"
        component: dict[str, Any] = {
            "type": "library" if name.startswith("lib") else "application", "name": name, "version": version,
            "purl": purl, "bom-ref": purl, "publisher": fields.get("Maintainer", ""),
            "properties": [{"name": "debian:source", "value": fields.get("Source", name).split(" ")[0]}],
        }
        if (root / "usr/share/doc" / name / "copyright").exists():
            component["properties"].append({"name": "debian:copyright", "value": f"/usr/share/doc/{name}/copyright"})
        out.append(component)
    return out


def python_components(root: Path) -> list[dict[str, Any]]:
    out = []
    for metadata in sorted(root.glob("usr/**/*.dist-info/METADATA")):
        with metadata.open(encoding="utf-8") as handle:
            message = email.parser.Parser().parse(handle, headersonly=True)
        name, version = str(message["Name"]), str(message["Version"])
        purl = f"pkg:pypi/{re.sub(r'[-_.]+', '-', name).lower()}@{version}"
        component: dict[str, Any] = {
            "type": "library", "name": name, "version": version, "purl": purl, "bom-ref": purl,
            "properties": [{"name": "python:location", "value": "/" + str(metadata.parent.relative_to(root))}],
        }
        expression, text = message.get("License-Expression"), message.get("License")
        if expression:
            component["licenses"] = [{"expression": str(expression)}]
        elif text and len(str(text)) < 100:
            component["licenses"] = [{"license": {"name": str(text)}}]
        out.append(component)
    return out


def cyclonedx(root: Path, name: str, version: str, epoch: int) -> str:
    components = sorted(debian_components(root) + python_components(root), key=lambda c: str(c["purl"]))
    body = json.dumps(components, sort_keys=True).encode()
    bom = {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": f"urn:uuid:{uuid.UUID(hashlib.sha256(body).hexdigest()[:32])}",
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "tools": {"components": [{"type": "application", "name": "image/build.py (px-security-operator)"}]},
            "component": {"type": "container", "name": name, "version": version},
        },
        "components": components,
    }
    return json.dumps(bom, indent=2) + "\n"
