"""The rules on a PxSecurity that its schema cannot express, each written twice: in CEL and in Python.

Validation has to happen where the user meets it first — `kubectl apply`, Argo CD, Flux — so the rules
ship inside the CRD as CEL (`x-kubernetes-validations`), and the API server rejects a bad object before
the operator ever sees it. The same rules must also run offline (`pxsec validate -f cr.yaml` in a GitOps
pipeline, no cluster at hand), with the same verdict and the same words. Two copies of the rules would
drift, so there is exactly one table: each row of `RULES` carries the CEL expression and message
emitted into the CRD *and* a Python predicate implementing the same check, so the offline validator
(`pxsec.validation`) never needs a CEL interpreter. Every row has a case in `tests/cases/invalid.yaml`,
and the e2e admission test proves the API server and `pxsec.validation` reject each case with the same
message.

`spec_schema_with_rules()` attaches each rule's CEL where it belongs in `pxsec.crdschema.SPEC_SCHEMA`:
the `spec` that `pxsec.crdgen` puts into the CRD.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from pxsec.caveats import MIN_LIFETIME_TEXT, MIN_LIFETIME_WITH_STORAGECLUSTER, short_lifetime
from pxsec.crdschema import (
    CHANGE_ID,
    CONFIGMAP_KEY,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    HTTPS_URL_NO_QUERY,
    LABEL_VALUE,
    QUALIFIED_KEY,
    QUALIFIED_KEY_MAX,
    SPEC_SCHEMA,
    TOKEN_LIFETIME,
)
from pxsec.spec import (
    DEFAULT_SELF_SIGNED_ISSUER,
    DEFAULT_SHARED_SECRET,
    DEFAULT_SYSTEM_SECRET,
    LIFETIME_UNITS,
    MAX_TOKEN_LIFETIME_SECONDS,
)


@dataclass(frozen=True)
class Rule:
    """One validation rule, in both languages.

    `location` is where in the schema the rule is attached: dotted property names, `[*]` for the items
    of a list or the values of a map (e.g. `spec.tokens[*].secretName`). `cel` and `check` must agree:
    `check` receives the same value CEL sees as `self` (after defaulting) and returns True when valid.
    `field_path` (CEL `fieldPath`, relative to `location`) is where the API server reports a failure.
    """

    id: str
    location: str
    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None
    # The CEL may read `oldSelf` (an optional: none on create) to spare objects stored before the rule.
    # `check` sees no old object: offline, every document is judged as a create.
    optional_old_self: bool = False
    # A rule about changes only (a create always passes it): offline there is no old object, so `check`
    # accepts; tests/e2e/test_admission.py updates objects to prove each such rule.
    transition: bool = False

    def to_crd(self) -> dict[str, Any]:
        """The `x-kubernetes-validations` entry for the CRD."""
        entry: dict[str, Any] = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.optional_old_self:
            entry["optionalOldSelf"] = True
        return entry


def _cel_str(value: str) -> str:
    """A CEL single-quoted string literal holding exactly `value`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # RE2's `$` (without the m flag) matches only at the very end; Python's also before a final "\n".
    python = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
    return re.compile(python)


def re2_search(pattern: str, value: str) -> bool:
    """What CEL's `value.matches(pattern)` returns: an unanchored RE2 search."""
    return _compiled(pattern).search(value) is not None


def _matches(pattern: str) -> tuple[str, Callable[[Any], bool]]:
    """The CEL expression and the predicate for "self matches `pattern`"."""
    return f"self.matches({_cel_str(pattern)})", lambda value: re2_search(pattern, value)


_DNS_HINT: Final = (
    "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
)


def _dns_rule(rule_id: str, location: str, what: str) -> Rule:
    cel, check = _matches(DNS1123_SUBDOMAIN)
    where = location.replace("[*]", "[]")
    return Rule(rule_id, location, cel, f"{where} must be a valid {what} name ({_DNS_HINT})", check)


def _get(obj: Mapping[str, Any], *keys: str) -> Any:
    """obj[k1][k2]... or None when a step is missing (CEL's `has()` chain)."""
    value: Any = obj
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _key_secret_names(spec: Mapping[str, Any]) -> list[str]:
    """Names of the Secrets holding the self-signed keys that are configured."""
    self_signed = spec.get("selfSigned")
    if not isinstance(self_signed, Mapping):
        return []
    return [
        self_signed[key]["secretName"]
        for key in ("sharedSecret", "rsa", "ecdsa")
        if isinstance(self_signed.get(key), Mapping)
    ]


def _self_signed_names_distinct(self_signed: Mapping[str, Any]) -> bool:
    names = _key_secret_names({"selfSigned": self_signed})
    return len(names) == len(set(names))


def _system_name_distinct(spec: Mapping[str, Any]) -> bool:
    return spec["system"]["secretName"] not in _key_secret_names(spec)


def _token_names_distinct_from_keys(spec: Mapping[str, Any]) -> bool:
    reserved = {spec["system"]["secretName"], *_key_secret_names(spec)}
    return all(token["secretName"] not in reserved for token in spec.get("tokens", []))


def _token_signing_keys_configured(spec: Mapping[str, Any]) -> bool:
    field_of = {"SharedSecret": "sharedSecret", "RSA": "rsa", "ECDSA": "ecdsa"}
    return all(
        "signingKey" not in token or _get(spec, "selfSigned", field_of[token["signingKey"]]) is not None
        for token in spec.get("tokens", [])
    )


def _unique(key: str) -> Callable[[list[Mapping[str, Any]]], bool]:
    """The check of a list whose items' `key` values must differ (the CEL `exists_one` rules)."""
    def check(items: list[Mapping[str, Any]]) -> bool:
        names = [item[key] for item in items]
        return len(names) == len(set(names))
    return check


def _tenant_signing_keys_configured(spec: Mapping[str, Any]) -> bool:
    return _token_signing_keys_configured({**spec, "tokens": spec.get("tenants", [])})


def _selector_not_empty(selector: Mapping[str, Any]) -> bool:
    return bool(selector.get("matchLabels")) or bool(selector.get("matchExpressions"))


def _signing_key_rule(rule_id: str, field: str, check: Callable[[Any], bool]) -> Rule:
    """spec.<field>[].signingKey names a key spec.selfSigned configures (spec.tokens, spec.tenants)."""
    return Rule(
        rule_id,
        "spec",
        f"!has(self.{field}) || self.{field}.all(t, !has(t.signingKey) || "
        "(t.signingKey == 'SharedSecret' && has(self.selfSigned) && has(self.selfSigned.sharedSecret)) || "
        "(t.signingKey == 'RSA' && has(self.selfSigned) && has(self.selfSigned.rsa)) || "
        "(t.signingKey == 'ECDSA' && has(self.selfSigned) && has(self.selfSigned.ecdsa)))",
        f"spec.{field}[].signingKey must name a key configured in spec.selfSigned: SharedSecret needs "
        "sharedSecret, RSA needs rsa, ECDSA needs ecdsa",
        check,
        field_path=f".{field}",
    )


def _qualified_keys(mapping: Mapping[str, Any]) -> bool:
    return all(len(key) <= QUALIFIED_KEY_MAX and re2_search(QUALIFIED_KEY, key) for key in mapping)


_HTTPS_CEL, _HTTPS_CHECK = _matches(HTTPS_URL_NO_QUERY)
_LIFETIME_CEL, _LIFETIME_CHECK = _matches(TOKEN_LIFETIME)
_CM_KEY_CEL, _CM_KEY_CHECK = _matches(CONFIGMAP_KEY)
_LABEL_VALUE_CEL, _LABEL_VALUE_CHECK = _matches(LABEL_VALUE)
_QUALIFIED_KEYS_CEL: Final = f"self.all(k, k.size() <= {QUALIFIED_KEY_MAX} && k.matches({_cel_str(QUALIFIED_KEY)}))"

# The key Secrets that are configured, as CEL conditions "<name> != x" joined by &&.
_CEL_NOT_A_KEY_SECRET: Final = (
    "(!has(self.selfSigned) || ("
    "(!has(self.selfSigned.sharedSecret) || self.selfSigned.sharedSecret.secretName != {x}) && "
    "(!has(self.selfSigned.rsa) || self.selfSigned.rsa.secretName != {x}) && "
    "(!has(self.selfSigned.ecdsa) || self.selfSigned.ecdsa.secretName != {x})))"
)

# What YAML 1.1/1.2 cannot carry, even escaped (its printable set is tab, LF, CR, NEL, U+0020-U+007E,
# U+00A0-U+D7FF, U+E000-U+FFFD and beyond U+FFFF); the API server reads an apply patch as YAML.
_NOT_YAML_PRINTABLE: Final = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\x{FFFE}\x{FFFF}]"


def _not_yaml_printable(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch not in "\t\n\r") or 0x7F <= code <= 0x84 or 0x86 <= code <= 0x9F \
        or code in (0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF


def _issuer_port_in_range(value: str) -> bool:
    """What `url(self).getPort()` gives for an issuer the format rule accepts, checked for 1-65535."""
    if not re2_search(HTTPS_URL_NO_QUERY, value):
        return True  # the format rule speaks for this one
    authority = value[len("https://"):].split("/", 1)[0]
    host_end = authority.rfind("]") + 1 if authority.startswith("[") else 0
    _, colon, port = authority[host_end:].rpartition(":")
    return not colon or port == "" or 1 <= int(port) <= 65535


def cel_lifetime_seconds(expr: str) -> str:
    """CEL for the seconds of the tokenLifetime `expr` (a string that matches TOKEN_LIFETIME and has at most
    11 characters, so the int64 cannot overflow)."""
    units = " : ".join(f"{expr}.endsWith('{unit}') ? {seconds}" for unit, seconds in LIFETIME_UNITS.items()
                       if unit != "s")
    return f"int({expr}.substring(0, {expr}.size() - 1)) * ({units} : 1)"


# A lifetime within MAX_TOKEN_LIFETIME_SECONDS: ten digits at most can stay under the limit, which also keeps
# CEL's int64 from overflowing (the format rule speaks for a value that does not match).
_LIFETIME_MAX_CEL: Final = (f"!self.matches({_cel_str(TOKEN_LIFETIME)}) || (self.size() <= 11 && "
                            f"{cel_lifetime_seconds('self')} <= {MAX_TOKEN_LIFETIME_SECONDS})")


def _lifetime_within_max(value: str) -> bool:
    if not re2_search(TOKEN_LIFETIME, value):
        return True  # the format rule speaks for this one
    return len(value) <= 11 and int(value[:-1]) * LIFETIME_UNITS[value[-1]] <= MAX_TOKEN_LIFETIME_SECONDS


RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "spec-token-source",
        "spec",
        "has(self.oidc) || has(self.selfSigned)",
        "spec needs at least one token source: set spec.oidc, spec.selfSigned, or both",
        lambda spec: "oidc" in spec or "selfSigned" in spec,
    ),
    _dns_rule("storage-cluster-name", "spec.storageCluster.name", "StorageCluster"),
    Rule(
        "storage-cluster-apply-needs-name",
        "spec.storageCluster",
        "!self.apply || has(self.name)",
        "spec.storageCluster.name is required when spec.storageCluster.apply is true: it names the "
        "StorageCluster the settings are merged into",
        lambda sc: not sc["apply"] or "name" in sc,
        field_path=".name",
    ),
    Rule(
        "approved-change-id",
        "spec.storageCluster.approvedChange",
        _matches(CHANGE_ID)[0],
        "spec.storageCluster.approvedChange must be the 12 hexadecimal digits of a change id, as "
        "status.pendingChange.id and pxsec plan show it",
        _matches(CHANGE_ID)[1],
    ),
    _dns_rule("system-secret-name", "spec.system.secretName", "Secret"),
    Rule(
        "system-secret-distinct",
        "spec",
        _CEL_NOT_A_KEY_SECRET.format(x="self.system.secretName"),
        "spec.system.secretName must differ from the Secrets of the spec.selfSigned keys (defaults: "
        f"system {DEFAULT_SYSTEM_SECRET}, sharedSecret {DEFAULT_SHARED_SECRET}): each Secret has one "
        "purpose",
        _system_name_distinct,
        field_path=".system.secretName",
    ),
    Rule(
        "system-secret-fixed-with-storagecluster",
        "spec",
        f"!has(self.storageCluster) || self.system.secretName == {_cel_str(DEFAULT_SYSTEM_SECRET)}",
        f"spec.system.secretName must be {DEFAULT_SYSTEM_SECRET} (or left out) when spec.storageCluster is "
        f"set: the Portworx Operator gives Portworx and Stork the system keys from {DEFAULT_SYSTEM_SECRET} "
        "whatever else is configured, so a Secret of another name would never be used",
        lambda spec: "storageCluster" not in spec or spec["system"]["secretName"] == DEFAULT_SYSTEM_SECRET,
        field_path=".system.secretName",
    ),
    Rule(
        "oidc-issuer-https",
        "spec.oidc.issuer",
        _HTTPS_CEL,
        "spec.oidc.issuer must be an https:// URL without query or fragment, and without user:password@ "
        "(it is copied into the StorageCluster's env and the ConfigMap), e.g. https://accounts.example.com",
        _HTTPS_CHECK,
    ),
    Rule(
        "oidc-issuer-port",
        "spec.oidc.issuer",
        f"!self.matches({_cel_str(HTTPS_URL_NO_QUERY)}) || url(self).getPort() == '' || "
        "(int(url(self).getPort()) >= 1 && int(url(self).getPort()) <= 65535)",
        "spec.oidc.issuer has a port out of range: use 1-65535, or no port for 443",
        _issuer_port_in_range,
    ),
    Rule(
        "oidc-client-id",
        "spec.oidc",
        "has(self.clientID) && self.clientID != ''",
        "spec.oidc.clientID is required with spec.oidc.issuer: Portworx turns OIDC on only when both "
        "are set, and a token's aud must contain the client ID",
        lambda oidc: bool(oidc.get("clientID")),
        field_path=".clientID",
    ),
    Rule(
        "oidc-custom-claim-namespace",
        "spec.oidc.customClaimNamespace",
        "self != ''",
        "spec.oidc.customClaimNamespace must not be empty: omit it, or give the prefix of the roles "
        "and groups claims including its separator, e.g. https://myoidc.provider.com/",
        lambda value: value != "",
    ),
    _dns_rule("oidc-ca-configmap-name", "spec.oidc.certificateAuthority.configMapRef.name", "ConfigMap"),
    Rule(
        "oidc-ca-configmap-key",
        "spec.oidc.certificateAuthority.configMapRef.key",
        _CM_KEY_CEL,
        "spec.oidc.certificateAuthority.configMapRef.key must be a valid ConfigMap key: letters, "
        "digits, '-', '_' and '.'",
        _CM_KEY_CHECK,
    ),
    Rule(
        "self-signed-key",
        "spec.selfSigned",
        "has(self.sharedSecret) || has(self.rsa) || has(self.ecdsa)",
        "spec.selfSigned needs at least one of sharedSecret, rsa, ecdsa (sharedSecret: {} uses the "
        f"default Secret {DEFAULT_SHARED_SECRET})",
        lambda self_signed: any(key in self_signed for key in ("sharedSecret", "rsa", "ecdsa")),
    ),
    Rule(
        "self-signed-issuer",
        "spec.selfSigned.issuer",
        "self != '' && !self.contains('http://') && !self.contains('https://')",
        "spec.selfSigned.issuer must be a non-empty name without http:// or https://, e.g. "
        f"{DEFAULT_SELF_SIGNED_ISSUER}: OpenStorage refuses self-signed issuers that look like URLs",
        lambda value: value != "" and "http://" not in value and "https://" not in value,
    ),
    Rule(
        "self-signed-token-lifetime",
        "spec.selfSigned.tokenLifetime",
        _LIFETIME_CEL,
        "spec.selfSigned.tokenLifetime must be one positive whole number and one unit, s, m, h, d or "
        "y, e.g. 24h or 7d: Portworx accepts no combined units such as 1h30m",
        _LIFETIME_CHECK,
    ),
    Rule(
        "self-signed-token-lifetime-max",
        "spec.selfSigned.tokenLifetime",
        _LIFETIME_MAX_CEL,
        f"spec.selfSigned.tokenLifetime must be at most 100 years ({MAX_TOKEN_LIFETIME_SECONDS // 86400}d, "
        "100y): a token's exp must stay a date Portworx and the operator can both represent",
        _lifetime_within_max,
    ),
    Rule(
        "token-lifetime-min-with-storagecluster",
        "spec",
        "!has(self.storageCluster) || !has(self.selfSigned) || "
        f"!self.selfSigned.tokenLifetime.matches({_cel_str(TOKEN_LIFETIME)}) || "
        "self.selfSigned.tokenLifetime.size() > 11 || "
        f"{cel_lifetime_seconds('self.selfSigned.tokenLifetime')} >= {MIN_LIFETIME_WITH_STORAGECLUSTER} || "
        # Stored before this rule, lifetime unchanged: a warning (status, admission), not a refusal.
        "(oldSelf.hasValue() && has(oldSelf.value().storageCluster) && has(oldSelf.value().selfSigned) && "
        "oldSelf.value().selfSigned.tokenLifetime == self.selfSigned.tokenLifetime)",
        f"spec.selfSigned.tokenLifetime must be at least {MIN_LIFETIME_TEXT} when spec.storageCluster is set: "
        "the Portworx Operator gives its own tokens this lifetime and re-mints them when they expire within "
        "1 minute, on a pass about every 30 s; below this it rewrites its token Secrets more often than the "
        "operator renews its own (at 2/3 of the lifetime)",
        lambda spec: "storageCluster" not in spec or "selfSigned" not in spec
        or not short_lifetime(spec["selfSigned"]["tokenLifetime"]),
        field_path=".selfSigned.tokenLifetime",
        optional_old_self=True,
    ),
    Rule(
        "rotation-every",
        "spec.rotation.every",
        _LIFETIME_CEL,
        "spec.rotation.every must be one positive whole number and one unit, s, m, h, d or y, e.g. 90d",
        _LIFETIME_CHECK,
    ),
    Rule(
        "rotation-grace-period",
        "spec.rotation.gracePeriod",
        _LIFETIME_CEL,
        "spec.rotation.gracePeriod must be one positive whole number and one unit, s, m, h, d or y, e.g. 24h",
        _LIFETIME_CHECK,
    ),
    Rule(
        "rotation-needs-self-signed",
        "spec",
        "!has(self.rotation) || has(self.selfSigned)",
        "spec.rotation needs spec.selfSigned: only the keys the operator keeps are rotated (an OIDC provider "
        "rotates its own)",
        lambda spec: "rotation" not in spec or "selfSigned" in spec,
        field_path=".rotation",
    ),
    Rule(
        "rotation-every-needs-an-asymmetric-key",
        "spec",
        "!has(self.rotation) || !has(self.rotation.every) || "
        "(has(self.selfSigned) && (has(self.selfSigned.rsa) || has(self.selfSigned.ecdsa)))",
        "spec.rotation.every needs spec.selfSigned.rsa or .ecdsa: the RSA and ECDSA keys take turns without "
        "a rejected request, the shared secret cannot (Portworx holds one), so it is rotated only on demand "
        "(annotation pxsec.dev/rotate-shared-secret)",
        lambda spec: "every" not in (spec.get("rotation") or {})
        or "rsa" in (spec.get("selfSigned") or {}) or "ecdsa" in (spec.get("selfSigned") or {}),
        field_path=".rotation.every",
    ),
    Rule(
        "rotation-needs-apply",
        "spec",
        "!has(self.rotation) || "
        "(has(self.storageCluster) && has(self.storageCluster.apply) && self.storageCluster.apply == true)",
        "spec.rotation needs spec.storageCluster with apply: true: a rotation gives Portworx its new key "
        "through the StorageCluster and waits for its rolling restart",
        lambda spec: "rotation" not in spec or (spec.get("storageCluster") or {}).get("apply") is True,
        field_path=".rotation",
    ),
    _dns_rule("shared-secret-name", "spec.selfSigned.sharedSecret.secretName", "Secret"),
    _dns_rule("rsa-secret-name", "spec.selfSigned.rsa.secretName", "Secret"),
    _dns_rule("ecdsa-secret-name", "spec.selfSigned.ecdsa.secretName", "Secret"),
    Rule(
        "self-signed-secrets-distinct",
        "spec.selfSigned",
        "(!has(self.sharedSecret) || !has(self.rsa) || self.sharedSecret.secretName != "
        "self.rsa.secretName) && "
        "(!has(self.sharedSecret) || !has(self.ecdsa) || self.sharedSecret.secretName != "
        "self.ecdsa.secretName) && "
        "(!has(self.rsa) || !has(self.ecdsa) || self.rsa.secretName != self.ecdsa.secretName)",
        "spec.selfSigned.sharedSecret, rsa and ecdsa must each name a different Secret (sharedSecret "
        f"defaults to {DEFAULT_SHARED_SECRET}): each Secret holds one key",
        _self_signed_names_distinct,
    ),
    _dns_rule("token-secret-name", "spec.tokens[*].secretName", "Secret"),
    Rule(
        "token-secrets-unique",
        "spec.tokens",
        "self.all(t, self.exists_one(u, u.secretName == t.secretName))",
        "spec.tokens[].secretName must be unique: each token is kept in its own Secret",
        _unique("secretName"),
    ),
    Rule(
        "token-secrets-distinct",
        "spec",
        "!has(self.tokens) || self.tokens.all(t, t.secretName != self.system.secretName && "
        + _CEL_NOT_A_KEY_SECRET.format(x="t.secretName")
        + ")",
        "spec.tokens[].secretName must differ from spec.system.secretName and from the Secrets of the "
        f"spec.selfSigned keys (defaults: system {DEFAULT_SYSTEM_SECRET}, sharedSecret "
        f"{DEFAULT_SHARED_SECRET}): each Secret has one purpose",
        _token_names_distinct_from_keys,
        field_path=".tokens",
    ),
    Rule(
        "tokens-need-self-signed",
        "spec",
        "!has(self.tokens) || size(self.tokens) == 0 || has(self.selfSigned)",
        "spec.tokens needs spec.selfSigned with at least one key: the operator signs the tokens it "
        "mints with a self-signed key",
        lambda spec: not spec.get("tokens") or "selfSigned" in spec,
        field_path=".tokens",
    ),
    _signing_key_rule("token-signing-key-configured", "tokens", _token_signing_keys_configured),
    Rule(
        "tenant-name",
        "spec.tenants[*].name",
        f"self.matches({_cel_str(DNS1123_LABEL)})",
        "spec.tenants[].name must be a DNS label: lowercase letters, digits and '-', starting and ending with "
        "a letter or digit, at most 63",
        lambda value: re2_search(DNS1123_LABEL, value),
    ),
    Rule(
        "tenant-names-unique",
        "spec.tenants",
        "self.all(t, self.exists_one(u, u.name == t.name))",
        "spec.tenants[].name must be unique",
        _unique("name"),
    ),
    _dns_rule("tenant-secret-name", "spec.tenants[*].secretName", "Secret"),
    Rule(
        "tenants-need-self-signed",
        "spec",
        "!has(self.tenants) || size(self.tenants) == 0 || has(self.selfSigned)",
        "spec.tenants needs spec.selfSigned: the operator signs tenant tokens with a self-signed key",
        lambda spec: not spec.get("tenants") or "selfSigned" in spec,
        field_path=".tenants",
    ),
    _signing_key_rule("tenant-signing-key-configured", "tenants", _tenant_signing_keys_configured),
    Rule(
        "tenant-no-admin-role",
        "spec.tenants[*].roles",
        "!self.exists(r, r == 'system.admin')",
        "spec.tenants[].roles must not hold system.admin: a tenant token is readable by every pod of its "
        "namespaces, which would all be Portworx admins",
        lambda roles: "system.admin" not in roles,
    ),
    Rule(
        "tenant-no-wildcard-group",
        "spec.tenants[*].groups",
        "!self.exists(g, g == '*')",
        'spec.tenants[].groups must not hold "*": it makes the token an ownership admin over every volume',
        lambda groups: "*" not in groups,
    ),
    Rule(
        "tenant-selector-not-empty",
        "spec.tenants[*].namespaceSelector",
        "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
        "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
        "spec.tenants[].namespaceSelector must not be empty: an empty selector selects every namespace",
        _selector_not_empty,
    ),
    Rule(
        "tenant-selector-values",
        "spec.tenants[*].namespaceSelector.matchExpressions[*]",
        "(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)",
        "spec.tenants[].namespaceSelector.matchExpressions[]: In and NotIn need values, Exists and "
        "DoesNotExist take none",
        lambda e: (e["operator"] in ("In", "NotIn")) == bool(e.get("values")),
    ),
    Rule(
        "tenant-selector-label-keys",
        "spec.tenants[*].namespaceSelector.matchLabels",
        _QUALIFIED_KEYS_CEL,
        "spec.tenants[].namespaceSelector.matchLabels keys must be valid label keys",
        _qualified_keys,
    ),
    Rule(
        "tenant-selector-label-values",
        "spec.tenants[*].namespaceSelector.matchLabels[*]",
        _LABEL_VALUE_CEL,
        "spec.tenants[].namespaceSelector.matchLabels values must be valid label values",
        _LABEL_VALUE_CHECK,
    ),
    Rule(
        "tenant-token-lifetime",
        "spec.tenants[*].tokenLifetime",
        _LIFETIME_CEL,
        "spec.tenants[].tokenLifetime must be one positive whole number and one unit, s, m, h, d or y, e.g. 24h",
        _LIFETIME_CHECK,
    ),
    Rule(
        "tenant-token-lifetime-max",
        "spec.tenants[*].tokenLifetime",
        _LIFETIME_MAX_CEL,
        "spec.tenants[].tokenLifetime must be at most 100 years",
        _lifetime_within_max,
    ),
    Rule(
        "tenant-subject-immutable",
        "spec.tenants[*]",
        "!oldSelf.hasValue() || (has(self.subject) ? self.subject : self.name) == "
        "(has(oldSelf.value().subject) ? oldSelf.value().subject : oldSelf.value().name)",
        "spec.tenants[].subject cannot change (nor be set to other than the name it defaulted to): Portworx "
        "records it as the owner of the tenant's volumes, which would lose their owner",
        lambda tenant: True,
        optional_old_self=True,
        transition=True,
    ),
    Rule(
        "secret-template-label-keys",
        "spec.secretTemplate.labels",
        _QUALIFIED_KEYS_CEL,
        "spec.secretTemplate.labels keys must be valid label keys: an optional DNS subdomain and '/', "
        "then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
        "or digit",
        _qualified_keys,
    ),
    Rule(
        "secret-template-label-values",
        "spec.secretTemplate.labels[*]",
        _LABEL_VALUE_CEL,
        "spec.secretTemplate.labels values must be valid label values: empty, or at most 63 letters, "
        "digits, '-', '_' or '.', starting and ending with a letter or digit",
        _LABEL_VALUE_CHECK,
    ),
    Rule(
        "secret-template-annotation-keys",
        "spec.secretTemplate.annotations",
        _QUALIFIED_KEYS_CEL,
        "spec.secretTemplate.annotations keys must be valid annotation keys: an optional DNS subdomain "
        "and '/', then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with "
        "a letter or digit",
        _qualified_keys,
    ),
    Rule(
        "secret-template-annotation-values",
        "spec.secretTemplate.annotations[*]",
        f"!self.matches({_cel_str(_NOT_YAML_PRINTABLE)})",
        "spec.secretTemplate.annotations values must be printable text: no control characters other than "
        "tab and newline (Secret metadata is applied as YAML, which cannot carry them)",
        lambda value: not any(_not_yaml_printable(ch) for ch in value),
    ),
)


# --------------------------------------------------------------------------------------------------
# Where the rules attach: shared by the offline validator and the CRD
# --------------------------------------------------------------------------------------------------


def location_steps(location: str) -> list[str]:
    """`spec.tokens[*].secretName` -> ["spec", "tokens", "[*]", "secretName"]."""
    steps: list[str] = []
    for part in location.split("."):
        if part.endswith("[*]"):
            steps += [part[:-3], "[*]"]
        else:
            steps.append(part)
    return steps


def schema_at(root: dict[str, Any], steps: list[str]) -> dict[str, Any]:
    """The node of the schema `root` (whose properties include `spec`) at `steps`."""
    node = root
    for step in steps:
        if step == "[*]":
            node = node["items"] if node.get("type") == "array" else node["additionalProperties"]
        else:
            node = node["properties"][step]
    return node


def spec_schema_with_rules() -> dict[str, Any]:
    """SPEC_SCHEMA with every rule's CEL attached where it belongs: what the CRD carries as `spec`."""
    root: dict[str, Any] = {"properties": {"spec": copy.deepcopy(SPEC_SCHEMA)}}
    for rule in RULES:
        node = schema_at(root, location_steps(rule.location))
        node.setdefault("x-kubernetes-validations", []).append(rule.to_crd())
    spec: dict[str, Any] = root["properties"]["spec"]
    return spec
