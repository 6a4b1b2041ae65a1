"""The OIDC judgement (pxsec.oidc): go-oidc's rules on discovery documents and key sets, no network.

Documents and key sets are built here as literals — what a provider would serve — so each rule is
pinned by its reason *and* the words a user will read. Key material in them is fake but distinctive,
so a test can prove that no message ever carries it.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pxsec import conditions, oidc
from pxsec.spec import CARef
from tests.support.oidc_provider import make_ca

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://idp.example.com/realms/px"
URL = "https://idp.example.com/realms/px/.well-known/openid-configuration"
JWKS_URI = "https://idp.example.com/realms/px/protocol/openid-connect/certs"
NOW = dt.datetime(2030, 5, 17, 12, 0, 0, 750000, tzinfo=dt.UTC)

RSA_N = "MODULUS-rsa-0123456789abcdefghij"
RSA_KEY = {"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": RSA_N, "e": "AQAB"}
EC_X = "XCOORD-ec-0123456789"
EC_KEY = {"kty": "EC", "kid": "e1", "crv": "P-256", "x": EC_X, "y": "YCOORD-ec-0123456789"}
EC384_KEY = {"kty": "EC", "kid": "e2", "crv": "P-384", "x": "X384", "y": "Y384"}
ENC_KEY = {"kty": "RSA", "kid": "r-enc", "use": "enc", "n": "MODULUS-enc", "e": "AQAB"}
OKP_KEY = {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "ED-x"}


def doc(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"issuer": ISSUER, "jwks_uri": JWKS_URI,
                                "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [dict(k) for k in keys]}


def judge(discovery: Any = None, key_set: Any = None, **kw: Any) -> oidc.ProbeResult:
    return oidc.judge(ISSUER, discovery, key_set, NOW, **kw)


def status_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "pxsecurity.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["oidc"]
    return schema


# -- discovery URL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("issuer", "url"), [
    ("https://idp.example.com", "https://idp.example.com/.well-known/openid-configuration"),
    ("https://idp.example.com/", "https://idp.example.com/.well-known/openid-configuration"),
    ("https://idp.example.com/realms/px", URL),
    # go-oidc trims one slash (strings.TrimSuffix), not all of them.
    ("https://idp.example.com//", "https://idp.example.com//.well-known/openid-configuration"),
])
def test_discovery_url_is_built_as_go_oidc_builds_it(issuer: str, url: str) -> None:
    assert oidc.discovery_url(issuer) == url


# -- success ---------------------------------------------------------------------------------------------


def test_a_matching_document_and_a_usable_key_set_make_the_provider_ready() -> None:
    key_set = jwks(RSA_KEY, EC_KEY)
    result = judge(doc(), key_set)
    assert result.ok and result.reason == oidc.PROVIDER_READY
    assert result.issuer_matches is True
    assert result.jwks_key_count == 2
    assert result.jwks_hash is not None and result.jwks_hash.startswith("sha256:")
    assert result.algorithms == ("RS256", "ES256")
    assert result.probed_at == NOW
    assert result.jwks is key_set
    assert result.message == (
        f"OIDC provider {ISSUER} is ready: the discovery document's issuer matches, the JWKS at {JWKS_URI} has "
        "2 keys (EC/P-256, RSA), algorithms RS256, ES256")
    assert result.condition == conditions.Condition(conditions.OIDC_READY, True, "ProviderReady", result.message)


def test_unannounced_algorithms_mean_rs256_as_go_oidc_assumes_and_the_message_says_so() -> None:
    result = judge(doc(id_token_signing_alg_values_supported=None), jwks(RSA_KEY))
    assert result.ok
    assert result.algorithms == ("RS256",)
    assert "announces no id_token_signing_alg_values_supported, so go-oidc assumes RS256" in result.message
    empty = judge(doc(id_token_signing_alg_values_supported=[]), jwks(RSA_KEY))
    assert empty.ok and empty.algorithms == ("RS256",)


def test_algorithms_are_the_announced_ones_go_oidc_supports_in_order_without_duplicates() -> None:
    announced = ["HS256", "PS512", "RS256", "EdDSA", "none", "RS256", "ES384", "rs512"]
    result = judge(doc(id_token_signing_alg_values_supported=announced), jwks(RSA_KEY, EC384_KEY))
    assert result.ok
    assert result.algorithms == ("PS512", "RS256", "ES384")


def test_keys_that_cannot_sign_are_counted_but_not_usable() -> None:
    result = judge(doc(), jwks(RSA_KEY, ENC_KEY, OKP_KEY))
    assert result.ok
    assert result.jwks_key_count == 3
    assert "has 1 of 3 keys usable (RSA)" in result.message


# -- the issuer ------------------------------------------------------------------------------------------


def test_a_trailing_slash_is_an_issuer_mismatch_and_the_message_shows_both_values() -> None:
    result = judge(doc(issuer=ISSUER + "/"))
    assert not result.ok and result.reason == oidc.ISSUER_MISMATCH
    assert result.issuer_matches is False
    assert result.message == (
        f'the discovery document at {URL} states issuer "{ISSUER}/", but spec.oidc.issuer is "{ISSUER}": '
        "go-oidc requires them to be equal character for character (they differ only by a trailing slash, "
        f'which counts); tokens from this provider carry iss "{ISSUER}/", so that is the value spec.oidc.issuer '
        "needs")
    assert result.jwks_key_count is None and result.jwks_hash is None


def test_the_configured_trailing_slash_counts_too() -> None:
    result = oidc.judge(ISSUER + "/", doc(), jwks(RSA_KEY), NOW)
    assert result.reason == oidc.ISSUER_MISMATCH
    assert "differ only by a trailing slash" in result.message


def test_letter_case_counts() -> None:
    result = judge(doc(issuer=ISSUER.replace("idp", "IDP")))
    assert result.reason == oidc.ISSUER_MISMATCH
    assert "(they differ only in letter case, which counts)" in result.message


def test_an_unrelated_issuer_gets_no_misleading_hint() -> None:
    result = judge(doc(issuer="https://other.example.com"))
    assert result.reason == oidc.ISSUER_MISMATCH
    assert "differ only" not in result.message
    assert '"https://other.example.com"' in result.message


def test_a_document_without_issuer_mismatches() -> None:
    result = judge(doc(issuer=None))
    assert result.reason == oidc.ISSUER_MISMATCH and result.issuer_matches is False
    assert result.message == (f"the discovery document at {URL} states no issuer; go-oidc requires it to equal "
                              f'spec.oidc.issuer "{ISSUER}" exactly')


def test_a_very_long_issuer_is_shortened_in_the_message() -> None:
    long_issuer = "https://idp.example.com/" + "a" * 3000
    result = judge(doc(issuer=long_issuer))
    assert result.reason == oidc.ISSUER_MISMATCH
    assert len(result.message) < 800
    assert '..."' in result.message


# -- the discovery document's shape ----------------------------------------------------------------------


@pytest.mark.parametrize(("document", "words"), [
    (["not", "an", "object"], "is not a JSON object"),
    ("text", "is not a JSON object"),
    (doc(issuer=42), "has an issuer that is not a string"),
    (doc(id_token_signing_alg_values_supported="RS256"), "that is not a list of strings"),
    (doc(id_token_signing_alg_values_supported=["RS256", 1]), "that is not a list of strings"),
    (doc(jwks_uri=["https://x"]), "has a jwks_uri that is not a string"),
    (doc(jwks_uri=None), "has no jwks_uri, so there are no keys to verify tokens with"),
])
def test_a_document_go_oidc_cannot_use_fails_discovery(document: Any, words: str) -> None:
    result = judge(document)
    assert not result.ok and result.reason == oidc.DISCOVERY_FAILED
    assert result.message.startswith(f"the discovery document at {URL} ")
    assert words in result.message


@pytest.mark.parametrize("uri", ["http://idp.example.com/certs", "ftp://idp.example.com/certs", "/certs",
                                 "https:///certs"])
def test_a_jwks_uri_that_is_not_https_is_refused(uri: str) -> None:
    result = judge(doc(jwks_uri=uri), jwks(RSA_KEY))
    assert not result.ok and result.reason == oidc.JWKS_FAILED
    assert result.issuer_matches is True
    assert f'points to jwks_uri "{uri}", which is not an https URL' in result.message
    assert result.jwks_key_count is None


# -- algorithms and keys ---------------------------------------------------------------------------------


def test_hs_only_providers_have_no_supported_algorithms() -> None:
    result = judge(doc(id_token_signing_alg_values_supported=["HS256", "HS512"]), jwks(RSA_KEY))
    assert not result.ok and result.reason == oidc.NO_SUPPORTED_ALGORITHMS
    assert result.algorithms == ()
    assert result.jwks_key_count == 1  # what the probe learnt is still reported
    assert result.message == (
        f"the provider at {URL} announces only HS256, HS512 in id_token_signing_alg_values_supported, but "
        "Portworx (go-oidc) verifies OIDC tokens with RS, ES or PS 256/384/512 only, never HS")
    assert oidc.status_fields(result)["algorithms"] == []


def test_an_empty_key_set_has_no_usable_keys() -> None:
    result = judge(doc(), jwks())
    assert not result.ok and result.reason == oidc.NO_USABLE_KEYS
    assert result.jwks_key_count == 0
    assert result.message == f"the JWKS at {JWKS_URI} has no keys, so no token can be verified"


def test_encryption_and_unsupported_keys_are_not_usable() -> None:
    result = judge(doc(), jwks(ENC_KEY, OKP_KEY, {**EC_KEY, "crv": "secp256k1"}))
    assert result.reason == oidc.NO_USABLE_KEYS
    assert result.jwks_key_count == 3
    assert f"none of the 3 keys in the JWKS at {JWKS_URI} is a signing key go-oidc can use" in result.message


def test_keys_that_cannot_verify_the_announced_algorithms_are_not_usable() -> None:
    result = judge(doc(id_token_signing_alg_values_supported=["RS256"]), jwks(EC_KEY))
    assert result.reason == oidc.NO_USABLE_KEYS
    assert result.message == (f"the JWKS at {JWKS_URI} holds EC/P-256 signing keys, none of which can verify the "
                              "provider's algorithms RS256")
    wrong_curve = judge(doc(id_token_signing_alg_values_supported=["ES256"]), jwks(EC384_KEY))
    assert wrong_curve.reason == oidc.NO_USABLE_KEYS


@pytest.mark.parametrize(("key_set", "words"), [
    ({"keys": "none"}, "is not a JSON object with a keys array"),
    ({}, "is not a JSON object with a keys array"),
    ([RSA_KEY], "is not a JSON object with a keys array"),
    ({"keys": [RSA_KEY, "k2"]}, "is malformed: key 1 is not a JSON object"),
])
def test_a_malformed_key_set_fails(key_set: Any, words: str) -> None:
    result = judge(doc(), key_set)
    assert not result.ok and result.reason == oidc.JWKS_FAILED
    assert result.message == f"the JWKS at {JWKS_URI} {words}"


# -- the hash --------------------------------------------------------------------------------------------


def test_the_hash_is_stable_across_key_order_and_member_order() -> None:
    first = judge(doc(), jwks(RSA_KEY, EC_KEY))
    reordered = judge(doc(), {"keys": [dict(reversed(list(EC_KEY.items()))), RSA_KEY]})
    assert first.jwks_hash == reordered.jwks_hash


def test_the_hash_changes_when_the_provider_rotates_a_key() -> None:
    before = judge(doc(), jwks(RSA_KEY, EC_KEY))
    rotated = judge(doc(), jwks({**RSA_KEY, "n": RSA_N + "x"}, EC_KEY))
    added = judge(doc(), jwks(RSA_KEY, EC_KEY, EC384_KEY))
    assert len({before.jwks_hash, rotated.jwks_hash, added.jwks_hash}) == 3


def test_private_members_are_not_hashed_and_are_reported_as_exposed() -> None:
    public = judge(doc(), jwks(RSA_KEY))
    leaked = judge(doc(), jwks({**RSA_KEY, "d": "PRIVATE-EXPONENT-zzz", "p": "PRIME-P"}))
    assert leaked.ok
    assert leaked.jwks_hash == public.jwks_hash
    assert "warning: the JWKS publishes private or symmetric key members" in leaked.message
    assert "warning" not in public.message


def test_no_message_carries_key_material() -> None:
    leaky = {**RSA_KEY, "d": "PRIVATE-EXPONENT-zzz"}
    results = [
        judge(doc(), jwks(leaky, EC_KEY)),
        judge(doc(id_token_signing_alg_values_supported=["HS256"]), jwks(leaky)),
        judge(doc(id_token_signing_alg_values_supported=["ES512"]), jwks(leaky, EC_KEY)),
        judge(doc(), jwks({**ENC_KEY, "d": "PRIVATE-EXPONENT-zzz"})),
    ]
    for result in results:
        for material in (RSA_N, EC_X, "PRIVATE-EXPONENT-zzz", "MODULUS-enc"):
            assert material not in result.message
            assert material not in repr(result)
            assert material not in str(oidc.status_fields(result))


# -- errors met while fetching ---------------------------------------------------------------------------


def test_fetch_errors_become_the_reason_of_their_stage() -> None:
    discovery = judge(error=f"{URL}: connection refused by idp.example.com", stage=oidc.STAGE_DISCOVERY)
    assert discovery.reason == oidc.DISCOVERY_FAILED
    assert discovery.message == f"cannot read the OIDC discovery document: {URL}: connection refused by " \
                                "idp.example.com"
    assert oidc.status_fields(discovery) == {"lastProbeTime": "2030-05-17T12:00:00Z"}

    key_set = judge(doc(), error=f"{JWKS_URI}: HTTP 500 Internal Server Error, expected 200", stage=oidc.STAGE_JWKS)
    assert key_set.reason == oidc.JWKS_FAILED
    assert key_set.message == f"cannot read the provider's JWKS: {JWKS_URI}: HTTP 500 Internal Server Error, " \
                              "expected 200"
    assert key_set.issuer_matches is True and key_set.algorithms == ("RS256", "ES256")
    assert key_set.jwks_key_count is None


def test_the_stage_of_an_error_is_inferred_from_what_was_fetched() -> None:
    assert judge(error="boom").reason == oidc.DISCOVERY_FAILED
    assert judge(doc(), error="boom").reason == oidc.JWKS_FAILED


def test_a_discovery_problem_outranks_a_jwks_error() -> None:
    result = judge(doc(issuer="https://other.example.com"), error="boom", stage=oidc.STAGE_JWKS)
    assert result.reason == oidc.ISSUER_MISMATCH


def test_ca_problems_say_the_provider_was_not_probed() -> None:
    missing = judge(error="ConfigMap portworx/oidc-ca (spec.oidc.certificateAuthority) not found",
                    stage=oidc.STAGE_CA_MISSING)
    assert missing.reason == oidc.CA_CONFIGMAP_MISSING
    assert missing.message == (f"ConfigMap portworx/oidc-ca (spec.oidc.certificateAuthority) not found; the OIDC "
                               f"provider {ISSUER} was not probed")
    invalid = judge(error="the CA bundle is empty", stage=oidc.STAGE_CA)
    assert invalid.reason == oidc.CA_INVALID and not invalid.ok


def test_nothing_fetched_and_no_error_is_still_a_failure() -> None:
    assert judge().reason == oidc.DISCOVERY_FAILED
    no_keys = judge(doc())
    assert no_keys.reason == oidc.JWKS_FAILED
    assert no_keys.message == f"the JWKS at {JWKS_URI} was not fetched"


def test_an_unknown_stage_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown probe stage"):
        judge(error="boom", stage="tls")


# -- status.oidc -----------------------------------------------------------------------------------------


def test_status_fields_are_exactly_the_crd_schema_properties_with_their_types() -> None:
    schema = status_schema()
    properties = schema["properties"]
    fields = oidc.status_fields(judge(doc(), jwks(RSA_KEY, EC_KEY)))
    assert set(fields) == set(properties)
    python_type = {"string": str, "boolean": bool, "integer": int, "array": list}
    for name, value in fields.items():
        assert type(value) is python_type[properties[name]["type"]], name
    assert len(fields["jwksHash"]) <= properties["jwksHash"]["maxLength"]
    assert len(fields["algorithms"]) <= properties["algorithms"]["maxItems"]
    assert fields["lastProbeTime"] == "2030-05-17T12:00:00Z"


@pytest.mark.parametrize("result", [
    judge(error="boom"),
    judge(doc(issuer="https://other.example.com")),
    judge(doc(), error="boom"),
    judge(doc(id_token_signing_alg_values_supported=["HS256"]), jwks(RSA_KEY)),
    judge(doc(), jwks()),
    judge(error="missing", stage=oidc.STAGE_CA_MISSING),
])
def test_failed_probes_report_only_known_fields_all_in_the_schema(result: oidc.ProbeResult) -> None:
    fields = oidc.status_fields(result)
    assert set(fields) <= set(status_schema()["properties"])
    assert None not in fields.values()
    assert "jwks" not in fields


def test_last_probe_time_is_utc_whole_seconds_with_z() -> None:
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=-7)))
    result = oidc.judge(ISSUER, doc(), jwks(RSA_KEY), local)
    assert oidc.status_fields(result)["lastProbeTime"] == "2030-05-17T12:00:00Z"


def test_the_repr_leaves_the_key_set_out() -> None:
    assert "jwks=" not in repr(judge(doc(), jwks(RSA_KEY)))


# -- the CA bundle ---------------------------------------------------------------------------------------


def _ca_pem() -> bytes:
    return make_ca()[1].public_bytes(serialization.Encoding.PEM)


def test_a_pem_certificate_is_a_valid_ca_bundle() -> None:
    assert oidc.check_ca(_ca_pem()) is None
    assert oidc.check_ca(b"comment line\n" + _ca_pem() + _ca_pem()) is None


def test_ca_bundles_without_a_certificate_are_refused_with_the_reason() -> None:
    private = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert oidc.check_ca(b"  \n") == "is empty"
    assert oidc.check_ca(private) == "holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert oidc.check_ca(broken) == "holds a PEM certificate that cannot be parsed"


def test_ca_bundle_reads_data_and_binary_data() -> None:
    pem = _ca_pem()
    ref = CARef(config_map="oidc-ca")
    assert oidc.ca_bundle({"data": {"ca.crt": pem.decode()}}, ref, "portworx") == pem
    assert oidc.ca_bundle({"binaryData": {"ca.crt": base64.b64encode(pem).decode()}}, ref, "portworx") == pem
    other_key = CARef(config_map="oidc-ca", key="bundle.pem")
    assert oidc.ca_bundle({"data": {"bundle.pem": pem.decode()}}, other_key, "portworx") == pem


def test_ca_bundle_reports_a_missing_config_map_or_key_as_missing() -> None:
    ref = CARef(config_map="oidc-ca")
    assert oidc.ca_bundle(None, ref, "portworx") == oidc.CAProblem(
        oidc.STAGE_CA_MISSING, "ConfigMap portworx/oidc-ca (spec.oidc.certificateAuthority) not found")
    assert oidc.ca_bundle({"data": {"tls.crt": "x"}, "binaryData": {"b": "eA=="}}, ref, "portworx") == oidc.CAProblem(
        oidc.STAGE_CA_MISSING,
        "ConfigMap portworx/oidc-ca has no key ca.crt (spec.oidc.certificateAuthority; keys found: b, tls.crt)")
    assert oidc.ca_bundle({"metadata": {}}, ref, "portworx") == oidc.CAProblem(
        oidc.STAGE_CA_MISSING,
        "ConfigMap portworx/oidc-ca has no key ca.crt (spec.oidc.certificateAuthority; keys found: none)")


def test_ca_bundle_reports_unusable_content_as_invalid() -> None:
    ref = CARef(config_map="oidc-ca")
    empty = oidc.ca_bundle({"data": {"ca.crt": ""}}, ref, "portworx")
    assert empty == oidc.CAProblem(
        oidc.STAGE_CA, "ConfigMap portworx/oidc-ca key ca.crt (spec.oidc.certificateAuthority) is empty")
    bad_base64 = oidc.ca_bundle({"binaryData": {"ca.crt": "***"}}, ref, "portworx")
    assert isinstance(bad_base64, oidc.CAProblem) and bad_base64.stage == oidc.STAGE_CA
    assert "not valid base64" in bad_base64.message
    result = judge(error=empty.message, stage=empty.stage)
    assert result.reason == oidc.CA_INVALID
