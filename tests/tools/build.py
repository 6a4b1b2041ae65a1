"""Build the Go tools the install and GitOps tests use, once per machine, into the user's cache:

- `helm` (helm.sh/helm/v3, the version tests/tools/helm/go.mod pins): `helm lint`, `helm template` and
  `helm install` of charts/px-security-operator against the real control plane;
- `pxsec-kstatus` (tests/tools/kstatus/main.go on sigs.k8s.io/cli-utils' kstatus, what Flux's health
  checks compute): the status of live PxSecurity objects as Flux sees them;
- `trust-manager` (github.com/cert-manager/trust-manager, the version tests/tools/trust-manager/go.mod pins):
  only for tests/bench/trust_manager.py, which builds it itself (not in TOOLS: `make tools` skips it);
- `cert-manager-controller` (github.com/cert-manager/cert-manager's controller, the version
  tests/tools/cert-manager/go.mod pins): only for tests/bench/cert_manager.py, likewise not in TOOLS. Its main
  package is not in any module the proxy serves (upstream's cmd/controller is the unpublished module
  github.com/cert-manager/cert-manager/controller-binary), so tests/tools/cert-manager holds that module's
  four Go files of the release tag verbatim, under the same module path (they import cert-manager's internal/
  packages, which only a path below github.com/cert-manager/cert-manager may), on the released
  github.com/cert-manager/cert-manager module from the proxy.

Like tests/interop/build.py: each binary is cached under
`${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/<tool>-<hash>/`, the hash covering the tool's go.mod,
go.sum (and main.go), so a warm run only hashes a few small files; any change to a pin builds a new one.
Modules come from the Go module proxy, exactly the versions and hashes go.mod and go.sum pin
(-mod=readonly). A tool that cannot be built is a clear failure, never a skip.

    python -m tests.tools.build      # builds what is missing, prints the paths (what `make tools` runs)
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support import gobuild
from tests.support.gobuild import GoBuildError

TOOLS_DIR = Path(__file__).resolve().parent


class ToolUnavailable(GoBuildError):
    """A tool is not cached and cannot be built; the message is one line for a person."""


@dataclass(frozen=True)
class GoTool:
    name: str  # also the cache folder's prefix
    source: str  # folder under tests/tools holding go.mod, go.sum (and main.go)
    package: str  # what `go build` builds, inside that module
    binary: str
    why: str  # for the error message
    # For a main package that is not on the Go module proxy and that this repository does not copy: the
    # environment variable naming a folder that holds it (its Go files, subfolders too), built with our go.mod.
    external: str | None = None
    how: str = ""  # with `external`: how a person gets that folder

    @property
    def dir(self) -> Path:
        return TOOLS_DIR / self.source

    def external_dir(self) -> Path | None:
        if self.external is None:
            return None
        value = os.environ.get(self.external, "")
        folder = Path(value) if value else None
        if folder is None or not (folder / "main.go").is_file():
            raise ToolUnavailable(f"{self.name}: set {self.external} to {self.how} (this repository copies none of "
                                  f"its code); {self.why}")
        return folder

    def files(self) -> list[Path]:
        """What the cache hash covers: go.mod, go.sum and every Go source of the module, subfolders too (and
        those of the external folder)."""
        top = [p for p in self.dir.iterdir() if p.name in ("go.mod", "go.sum") or p.suffix == ".go"]
        below = [p for p in self.dir.rglob("*.go") if p.parent != self.dir]
        outside = self.external_dir()
        return [*sorted(top), *sorted(below), *(sorted(outside.rglob("*.go")) if outside else [])]

    def staged(self) -> Path:
        """The folder `go build` runs in: ours, or (with `external`) go.mod and go.sum beside that folder's Go
        files in a build folder of the cache."""
        outside = self.external_dir()
        if outside is None:
            return self.dir
        stage = gobuild.cache_root() / f"{self.name}-src-{self.source_hash()}"
        if not (stage / "main.go").is_file():
            tmp = Path(tempfile.mkdtemp(dir=gobuild.cache_root()))
            for name in ("go.mod", "go.sum"):
                shutil.copy2(self.dir / name, tmp / name)
            for src in outside.rglob("*.go"):
                dst = tmp / src.relative_to(outside)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            shutil.rmtree(stage, ignore_errors=True)
            tmp.replace(stage)
        return stage

    def source_hash(self) -> str:
        return gobuild.source_hash(self.files(), self.ldflags().encode())

    def required(self, module: str) -> str:
        """The version go.mod pins for `module`."""
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", (self.dir / "go.mod").read_text(),
                          re.MULTILINE)
        if not match:
            raise ToolUnavailable(f"tests/tools/{self.source}/go.mod does not pin {module}")
        return match.group(1)

    def ldflags(self) -> str:
        if self.name != "helm":
            return "-s -w"
        # As helm's own Makefile stamps a release: its version, and the Kubernetes version its client
        # libraries speak (client-go v0.37.x -> 1.37), which `helm template` and `helm lint` assume.
        version = self.required("helm.sh/helm/v3")
        minor = self.required("k8s.io/client-go").removeprefix("v0.").split(".")[0]
        flags = [f"-X helm.sh/helm/v3/internal/version.version={version}"]
        for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
        return " ".join(["-s -w", *flags])

    def path(self) -> Path:
        return gobuild.cache_root() / f"{self.name}-{self.source_hash()}" / self.binary


HELM = GoTool("helm", "helm", "helm.sh/helm/v3/cmd/helm", "helm",
              "the Helm chart is linted, rendered and installed by the real helm")
KSTATUS = GoTool("kstatus", "kstatus", ".", "pxsec-kstatus",
                 "Flux's health (kstatus, sigs.k8s.io/cli-utils) is computed on live PxSecurity objects")
# Not in TOOLS (`make tools` and the tests never need it): tests/bench/trust_manager.py ensures it itself.
TRUST_MANAGER = GoTool("trust-manager", "trust-manager", "github.com/cert-manager/trust-manager/cmd/trust-manager",
                       "trust-manager", "the tenant benchmark compares with trust-manager")
# Not in TOOLS either: tests/bench/cert_manager.py ensures it itself (minutes on a cold cache).
CERT_MANAGER = GoTool("cert-manager", "cert-manager", ".", "cert-manager-controller",
                      "the end-to-end comparison (tests/bench/compare.py) runs cert-manager's controller",
                      external="PXSEC_CERT_MANAGER_SRC",
                      how="the cmd/controller folder of a cert-manager v1.21.1 checkout (git clone --branch v1.21.1 "
                          "https://github.com/cert-manager/cert-manager; its main package is not on the Go module "
                          "proxy)")
TOOLS = (HELM, KSTATUS)


def ensure(tool: GoTool, log: bool = False) -> Path:
    """The tool's binary, built first if this version of it is not cached. Raises ToolUnavailable."""
    return gobuild.ensure(tool.path(), tool.staged(), what=f"{tool.name} (tests/tools/{tool.source})",
                          why=f"{tool.why}; `make tools` builds it", package=tool.package, ldflags=tool.ldflags(),
                          error=ToolUnavailable, log=log)


def main() -> int:
    for tool in TOOLS:
        try:
            path = ensure(tool, log=True)
        except ToolUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{tool.name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
