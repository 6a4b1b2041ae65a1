"""The key-material plan: existing keys win, missing keys are added, invalid keys are reported and kept,
lost Secrets are recreated loudly. Pure: no cluster."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec import keymaterial, keyplan
from pxsec.keyplan import Action, Observed, Origin, Recorded
from pxsec.spec import parse_spec

SPEC = parse_spec({
    "selfSigned": {
        "issuer": "operator.portworx.io",
        "sharedSecret": {},
        "rsa": {"secretName": "px-jwt-rsa", "size": 2048},
        "ecdsa": {"secretName": "px-jwt-ecdsa", "curve": "P-256"},
    },
})


def req(name: str) -> keyplan.Requirement:
    return next(r for r in keyplan.requirements(SPEC) if r.name == name)


def generated(name: str, data: dict[str, bytes]) -> Observed:
    labels, annotations = keyplan.desired_metadata("px", req(name).purpose.value, {}, {})
    return Observed(name, data, labels, annotations, "1")


def test_requirements_follow_the_spec_in_a_stable_order() -> None:
    assert [(r.name, r.purpose.value, r.keys) for r in keyplan.requirements(SPEC)] == [
        ("px-system-secrets", "system", ("system-secret", "apps-secret")),
        ("px-shared-secret", "shared-secret", ("shared-secret",)),
        ("px-jwt-rsa", "rsa", ("private.pem", "public.pem")),
        ("px-jwt-ecdsa", "ecdsa", ("private.pem", "public.pem")),
    ]
    oidc_only = parse_spec({"oidc": {"issuer": "https://a.example", "clientID": "px"}})
    assert [r.name for r in keyplan.requirements(oidc_only)] == ["px-system-secrets"]


def test_missing_secret_is_created_and_not_reported_lost_the_first_time() -> None:
    p = keyplan.plan_secret(req("px-system-secrets"), None, None, SPEC)
    assert p.action is Action.CREATE and p.origin is Origin.GENERATED and not p.lost
    assert set(p.recipes) == {"system-secret", "apps-secret"}


def test_missing_secret_that_status_knew_is_lost() -> None:
    p = keyplan.plan_secret(req("px-shared-secret"), None, Recorded("sha256:x", 3, "Generated"), SPEC)
    assert p.action is Action.CREATE and p.lost


@pytest.mark.parametrize("mark, value, lost", [
    ("4", b"n" * 64, True),    # ours, regenerated after the loss status records (revision 3): still a loss
    ("3", b"n" * 64, False),   # the mark of an earlier loss, status caught up since: a change by hand
    ("4", b"o" * 64, False),   # the recorded value itself: nothing happened
    (None, b"n" * 64, False),  # no mark (a first Secret, or the Portworx Operator stripped it)
])
def test_a_secret_regenerated_after_a_loss_is_known_by_its_mark(mark: str | None, value: bytes, lost: bool) -> None:
    r = req("px-shared-secret")
    recorded = Recorded(keyplan.secret_fingerprint(r, {"shared-secret": b"o" * 64}), 3, "Generated")
    observed = generated("px-shared-secret", {"shared-secret": value})
    if mark is not None:
        observed = Observed(observed.name, observed.data, observed.labels,
                            {**observed.annotations, keyplan.REGENERATED_ANNOTATION: mark}, "2")
    p = keyplan.plan_secret(r, observed, recorded, SPEC)
    assert p.action is Action.NONE and p.lost is lost
    assert keyplan.regenerated_mark(recorded) == {keyplan.REGENERATED_ANNOTATION: "4"}
    assert keyplan.regenerated_mark(None) == {}


def test_existing_complete_secret_is_left_alone_and_adopted_when_not_ours() -> None:
    data = {"system-secret": b"a" * 64, "apps-secret": b"b" * 64}
    p = keyplan.plan_secret(req("px-system-secrets"), Observed("px-system-secrets", data), None, SPEC)
    assert p.action is Action.NONE and p.origin is Origin.ADOPTED
    p = keyplan.plan_secret(req("px-system-secrets"), generated("px-system-secrets", data), None, SPEC)
    assert p.origin is Origin.GENERATED


def test_only_missing_keys_are_added() -> None:
    data = {"system-secret": b"u" * 64}
    p = keyplan.plan_secret(req("px-system-secrets"), Observed("px-system-secrets", data), None, SPEC)
    assert p.action is Action.ADD_KEYS and set(p.recipes) == {"apps-secret"}
    added = keymaterial.materialize(p.recipes, data)
    assert set(added) == {"apps-secret"}  # system-secret is never regenerated


@pytest.mark.parametrize("value, note", [
    (b"short", "at least 32 are advised"),
    (b"x" * 64 + b"\n", "whitespace"),
    (b"  " + b"y" * 40, "whitespace"),
])
def test_a_weak_shared_secret_portworx_accepts_is_adopted_with_a_note(value: bytes, note: str) -> None:
    """An existing cluster's secret must be adopted on an upgrade: said, never refused or rewritten."""
    p = keyplan.plan_secret(req("px-shared-secret"), Observed("px-shared-secret", {"shared-secret": value}),
                            None, SPEC)
    assert p.action is Action.NONE and p.origin is Origin.ADOPTED and not p.recipes
    assert any(note in msg for msg in p.notes)
    assert all(value.decode().strip() not in msg for msg in p.notes)


@pytest.mark.parametrize("value, problem", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"\xff\xfe" * 20, "not ASCII"),
])
def test_invalid_user_shared_secret_is_reported_not_replaced(value: bytes, problem: str) -> None:
    p = keyplan.plan_secret(req("px-shared-secret"), Observed("px-shared-secret", {"shared-secret": value}),
                            None, SPEC)
    assert p.action is Action.INVALID and not p.recipes
    assert any(problem in msg for msg in p.problems)
    assert all(value.decode("latin-1").strip() not in msg for msg in p.problems if value.strip())


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_rsa_too_small_is_invalid() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p = keyplan.plan_secret(req("px-jwt-rsa"), Observed("px-jwt-rsa", {"private.pem": _pem_private(small)}),
                            None, SPEC)
    assert p.action is Action.INVALID
    assert "1024 bits" in p.problems[0]


def test_ecdsa_on_the_wrong_curve_is_invalid() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    p = keyplan.plan_secret(req("px-jwt-ecdsa"), Observed("px-jwt-ecdsa", {"private.pem": _pem_private(key)}),
                            None, SPEC)
    assert p.action is Action.INVALID and "secp384r1" in p.problems[0]


def test_not_pem_and_pkcs1_public_key_are_invalid() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    p = keyplan.plan_secret(req("px-jwt-rsa"), Observed("px-jwt-rsa", {
        "private.pem": b"not a key", "public.pem": pkcs1}), None, SPEC)
    assert p.action is Action.INVALID
    assert any("not a PEM private key" in m for m in p.problems)
    assert any("PKCS#1" in m for m in p.problems)


def test_mismatched_pair_is_invalid() -> None:
    a = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    b = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub_b = b.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    p = keyplan.plan_secret(req("px-jwt-rsa"), Observed("px-jwt-rsa", {
        "private.pem": _pem_private(a), "public.pem": pub_b}), None, SPEC)
    assert p.problems == ("public.pem does not belong to private.pem",)


def test_public_key_is_derived_from_an_existing_private_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = _pem_private(key)
    p = keyplan.plan_secret(req("px-jwt-ecdsa"), Observed("px-jwt-ecdsa", {"private.pem": private}), None, SPEC)
    assert p.action is Action.ADD_KEYS and set(p.recipes) == {"public.pem"}
    added = keymaterial.materialize(p.recipes, {"private.pem": private})
    assert set(added) == {"public.pem"}
    assert keymaterial.check_key_pair(private, added["public.pem"], keymaterial.KeyKind.ECDSA, curve="P-256") == []


def test_public_key_alone_is_a_verification_only_setup() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    p = keyplan.plan_secret(req("px-jwt-ecdsa"), Observed("px-jwt-ecdsa", {"public.pem": pub}), None, SPEC)
    assert p.action is Action.NONE and "cannot sign" in p.notes[0]


def test_generated_values_have_the_shapes_portworx_accepts() -> None:
    p = keyplan.plan_secret(req("px-jwt-rsa"), None, None, SPEC)
    data = keymaterial.materialize(p.recipes, {})
    assert data["private.pem"].startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert data["public.pem"].startswith(b"-----BEGIN PUBLIC KEY-----")  # PKIX
    assert keymaterial.check_key_pair(data["private.pem"], data["public.pem"], keymaterial.KeyKind.RSA) == []
    shared = keymaterial.generate_shared_secret()
    assert len(shared) == 64
    base64.b64decode(shared + "=" * (-len(shared) % 4))  # base64 alphabet only


def test_fingerprint_covers_only_the_keys_the_operator_uses() -> None:
    r = req("px-shared-secret")
    base = {"shared-secret": b"s" * 64}
    assert keyplan.secret_fingerprint(r, base) == keyplan.secret_fingerprint(r, {**base, "note": b"user's"})
    assert keyplan.secret_fingerprint(r, base) != keyplan.secret_fingerprint(r, {"shared-secret": b"t" * 64})
    assert keymaterial.fingerprint({"a": b"bc"}) != keymaterial.fingerprint({"ab": b"c"})


def test_template_never_overrides_our_markers() -> None:
    labels, annotations = keyplan.desired_metadata(
        "px", keyplan.Purpose.SYSTEM.value, {"team": "storage", "app.kubernetes.io/managed-by": "someone"},
        {"note": "x", "pxsec.dev/origin": "Adopted"})
    assert labels["team"] == "storage" and labels["app.kubernetes.io/managed-by"] == "px-security-operator"
    assert annotations["note"] == "x" and annotations["pxsec.dev/origin"] == "Generated"


def test_a_certificate_in_public_pem_is_valid_as_portworx_reads_it() -> None:
    """golang-jwt reads public.pem as PKIX or as an X.509 certificate's key: the operator and `pxsec token
    verify` share that one loader (keymaterial.load_public_key), so they agree."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "px")])
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    data = {"private.pem": _pem_private(key), "public.pem": cert.public_bytes(serialization.Encoding.PEM)}
    p = keyplan.plan_secret(req("px-jwt-ecdsa"), Observed("px-jwt-ecdsa", data), None, SPEC)
    assert p.action is Action.NONE, p.problems
