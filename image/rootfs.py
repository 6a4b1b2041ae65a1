"""The Debian side of the image: which installed packages python3 needs at run time, and the clean-up of a
root filesystem after the packages it does not need are gone.

mmdebstrap's `essential` variant brings dpkg, a shell, coreutils, perl-base and so on: needed to *install*
packages, never to run the operator. What stays is python3's Depends/Pre-Depends closure (plus base-files:
/etc/os-release, which scanners and the SBOM read); everything else is purged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Install-time tools that some run-time package names in Pre-Depends (e.g. dpkg for its triggers): never kept.
NEVER_KEEP = frozenset({"dpkg", "tar", "mawk", "debconf", "perl-base", "bash", "dash", "coreutils"})


def parse_status(path: Path) -> dict[str, dict[str, str]]:
    """The installed stanzas of a dpkg status file, by package name."""
    packages: dict[str, dict[str, str]] = {}
    for stanza in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        last = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
                last = key
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            packages[fields["Package"]] = fields
    return packages


def _names(field: str) -> list[list[str]]:
    """A Depends-style field as clauses of alternatives, each a bare package name."""
    clauses = []
    for clause in (c.strip() for c in field.split(",")):
        if clause:
            clauses.append([re.split(r"[ (:]", alt.strip())[0] for alt in clause.split("|")])
    return clauses


def closure(packages: dict[str, dict[str, str]], roots: list[str],
            exclude: frozenset[str] = NEVER_KEEP) -> set[str]:
    """`roots` and everything they (transitively) Depend or Pre-Depend on among the installed packages,
    never entering `exclude`. The first installed alternative (or provider) of a clause satisfies it."""
    provides: dict[str, list[str]] = {}
    for name, fields in sorted(packages.items()):
        for clause in _names(fields.get("Provides", "")):
            provides.setdefault(clause[0], []).append(name)
    keep: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep or name in exclude:
            continue
        if name not in packages:
            raise ValueError(f"{name} is not installed in the root filesystem")
        keep.add(name)
        fields = packages[name]
        for clause in _names(",".join(filter(None, (fields.get("Pre-Depends"), fields.get("Depends"))))):
            for alt in clause:
                candidates = [alt] if alt in packages else provides.get(alt, [])
                if candidates:
                    todo.append(candidates[0])
                    break
    return keep


def resolve_inside(root: Path, path: Path, depth: int = 0) -> Path | None:
    """Where `path` (inside `root`) leads when symbolic links are followed as the image would follow them
    (an absolute target is relative to `root`, not to the host); None when it leads nowhere."""
    if depth > 40:
        return None
    current = root
    for part in path.relative_to(root).parts:
        step = current / part
        if step.is_symlink():
            target = os.readlink(step)
            base = root if target.startswith("/") else current
            resolved = resolve_inside(root, Path(os.path.normpath(base / target.lstrip("/"))), depth + 1)
            if resolved is None:
                return None
            step = resolved
        elif not os.path.lexists(step):
            return None
        current = step
    return current


def remove_dangling_links(root: Path) -> list[str]:
    """Delete the symbolic links that point at nothing in the image (left behind by the purge)."""
    removed = []
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(directory) / name
            if path.is_symlink() and resolve_inside(root, path) is None:
                removed.append(f"/{path.relative_to(root)} -> {os.readlink(path)}")
                path.unlink()
    return removed


def prune_records(site: Path) -> None:
    """Drop the lines of every dist-info RECORD whose file the build removed (tests, unused modules,
    console scripts, direct_url.json), so RECORD still describes what is there."""
    for record in sorted(site.glob("*.dist-info/RECORD")):
        kept = [line for line in record.read_text(encoding="utf-8").splitlines()
                if line and os.path.lexists(os.path.normpath(site / line.split(",", 1)[0]))]
        record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
