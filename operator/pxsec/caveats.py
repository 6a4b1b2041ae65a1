"""What a PxSecurity asks for that Portworx, run by the Portworx Operator, will not give exactly as written.

Two things cannot be, once `spec.storageCluster` is set:

* **OIDC-only.** With auth on, the Portworx Operator fills `auth.selfSigned` of every StorageCluster with
  defaults (libopenstorage/operator `drivers/storage/portworx/portworx.go` setSecuritySpecDefaults): an
  issuer (`operator.portworx.io`), a shared-secret Secret (`px-shared-secret`), and it mints
  `px-admin-token` (system.admin, groups `*`) with that secret. Portworx then trusts HS256 tokens signed
  with the shared secret beside the OIDC provider's. A spec with `oidc` and no `selfSigned` is valid and
  works; it is only not OIDC-only. So this is said (validate, admission warning, status), never refused.

* **Very short token lifetimes.** `spec.selfSigned.tokenLifetime` becomes the StorageCluster's
  `auth.selfSigned.tokenLifetime`, the lifetime of the Portworx Operator's tokens too. It re-mints them
  when they expire within `PORTWORX_OPERATOR_BUFFER` (component/auth.go `AuthTokenBufferLength`, 1
  minute), found by a pass about every `PORTWORX_OPERATOR_PASS` (~30 s). We renew ours at
  `tokens.RENEW_FRACTION` (2/3) of the lifetime. The minimum is the lifetime L at which its rewrite period
  (L - 60 s) is no shorter than our renewal period (2L/3): L >= 60 s / (1 - 2/3) = 180 s. At 3 minutes its
  tokens are rewritten every 2 to 2.5 minutes (4-5 of its passes), ours every 2 minutes; at 90 s or less
  it would rewrite both of its token Secrets on every pass, and each rewrite of a token Secret is a new
  token every consumer must pick up. New objects below the minimum are refused by the CRD (a CEL rule);
  objects stored before the rule get a warning, never a refusal.
"""

from __future__ import annotations

import math
from typing import Final

from pxsec.spec import DEFAULT_SELF_SIGNED_ISSUER, DEFAULT_SHARED_SECRET, PxSecuritySpec
from pxsec.tokens import RENEW_FRACTION, parse_lifetime

PORTWORX_OPERATOR_BUFFER: Final = 60  # seconds; component/auth.go AuthTokenBufferLength
PORTWORX_OPERATOR_PASS: Final = 30  # seconds between its passes over a StorageCluster (observed 27-34 s)
MIN_LIFETIME_WITH_STORAGECLUSTER: Final = math.ceil(PORTWORX_OPERATOR_BUFFER / (1 - RENEW_FRACTION))
MIN_LIFETIME_TEXT: Final = f"{MIN_LIFETIME_WITH_STORAGECLUSTER // 60}m"

# At the minimum its tokens must outlive at least one pass beyond the buffer, or every pass re-mints.
assert MIN_LIFETIME_WITH_STORAGECLUSTER > PORTWORX_OPERATOR_BUFFER + PORTWORX_OPERATOR_PASS
assert MIN_LIFETIME_WITH_STORAGECLUSTER % 60 == 0

NOT_OIDC_ONLY: Final = (
    "not OIDC-only: with spec.storageCluster set, the Portworx Operator gives the StorageCluster a self-signed "
    "issuer {names} and mints px-admin-token with it, so Portworx also trusts HS256 tokens signed with that "
    "secret beside the OIDC provider's; only a DaemonSet or px-runc install (no spec.storageCluster) trusts the "
    "OIDC provider alone"
)
SHORT_LIFETIME: Final = (
    "spec.selfSigned.tokenLifetime {lifetime} is below the minimum of {minimum} with spec.storageCluster set: "
    "the Portworx Operator re-mints its tokens (of the same lifetime) when they expire within 1 minute, on a "
    "pass about every 30 s, so it would rewrite its token Secrets more often than the operator renews its own"
)


def lifetime_seconds(text: str) -> int | None:
    """Seconds of a tokenLifetime the CRD accepts (`tokens.parse_lifetime`, the minting code's reading); None
    otherwise."""
    try:
        return int(parse_lifetime(text).total_seconds())
    except ValueError:
        return None


def short_lifetime(text: str) -> bool:
    """A lifetime of the accepted form below the minimum for a StorageCluster."""
    seconds = lifetime_seconds(text)
    return seconds is not None and seconds < MIN_LIFETIME_WITH_STORAGECLUSTER


def caveats(spec: PxSecuritySpec, issuer: str | None = None, shared_secret: str | None = None) -> list[str]:
    """What to tell the user about this spec (empty when nothing). `issuer` / `shared_secret`: what the
    targeted StorageCluster names, when known (the operator knows; `pxsec validate` does not)."""
    if not spec.storage_cluster.targeted:
        return []
    out: list[str] = []
    if spec.oidc is not None and spec.self_signed is None:
        names = (f"({issuer}) with the shared secret in Secret {shared_secret}" if issuer and shared_secret else
                 f"(by default {DEFAULT_SELF_SIGNED_ISSUER}, with the shared secret in Secret {DEFAULT_SHARED_SECRET})")
        out.append(NOT_OIDC_ONLY.format(names=names))
    if spec.self_signed is not None and short_lifetime(spec.self_signed.token_lifetime):
        out.append(SHORT_LIFETIME.format(lifetime=spec.self_signed.token_lifetime, minimum=MIN_LIFETIME_TEXT))
    return out
