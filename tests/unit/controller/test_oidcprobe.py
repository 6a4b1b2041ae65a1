"""The OIDC probe (pxsec.controller.oidcprobe) against a real HTTPS provider on loopback
(tests/support/oidc_provider.py).

Real TLS, real redirects, real slow answers: what urllib and OpenSSL actually do, not what a mock
assumes. Every Prober here connects directly (`proxies={}`), so no test depends on — or leaks through —
a proxy in the environment; every address is 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from pxsec import oidc
from pxsec.controller.oidcprobe import Prober
from pxsec.spec import parse_spec
from pxsec.verify import VerifyKeys, verify
from tests.support.oidc_provider import ALIAS_PATH, JWKS_PATH, WELL_KNOWN, OIDCProvider, free_port, make_ca

NOW = dt.datetime(2030, 5, 17, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def provider() -> Iterator[OIDCProvider]:
    with OIDCProvider() as p:
        yield p


def prober(**kw: Any) -> Prober:
    return Prober(proxies={}, **kw)


def paths(p: OIDCProvider) -> list[str]:
    return [path.removeprefix(p.realm_path) for path in p.requests]


# -- success ---------------------------------------------------------------------------------------------


def test_a_provider_trusted_through_its_ca_is_ready(provider: OIDCProvider) -> None:
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.ok, result.message
    assert result.reason == oidc.PROVIDER_READY
    assert result.issuer_matches is True
    assert result.jwks_key_count == 2
    assert result.algorithms == ("RS256", "ES256", "PS256")
    assert result.probed_at == NOW
    assert provider.jwks_uri in result.message
    assert paths(provider) == [WELL_KNOWN, JWKS_PATH]
    assert oidc.status_fields(result) == {
        "lastProbeTime": "2030-05-17T12:00:00Z", "issuerMatches": True, "jwksKeyCount": 2,
        "jwksHash": result.jwks_hash, "algorithms": ["RS256", "ES256", "PS256"]}


def test_the_hash_is_the_same_for_two_fetches_of_the_same_keys(provider: OIDCProvider) -> None:
    first = prober().probe(provider.issuer, provider.ca_pem, NOW)
    second = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert first.jwks_hash == second.jwks_hash
    assert first.jwks_hash == oidc.jwks_hash(provider.jwks()["keys"])


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256"])
def test_the_probed_key_set_verifies_the_providers_tokens(provider: OIDCProvider, alg: str) -> None:
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    spec = parse_spec({"oidc": {"issuer": provider.issuer, "clientID": "portworx"}})
    t = int(NOW.timestamp())
    token = provider.token({"iss": provider.issuer, "aud": "portworx", "sub": "u-1", "name": "Ada",
                            "email": "ada@example.com", "roles": ["system.user"], "iat": t - 60, "exp": t + 600}, alg)
    verdict = verify(token, spec, VerifyKeys(), NOW, jwks=result.jwks, oidc_algorithms=result.algorithms)
    assert verdict.accepted, verdict.reason


def test_an_algorithm_the_provider_does_not_announce_is_refused_by_verify(provider: OIDCProvider) -> None:
    provider.algorithms = ["ES256"]
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.ok and result.algorithms == ("ES256",)
    spec = parse_spec({"oidc": {"issuer": provider.issuer, "clientID": "portworx"}})
    t = int(NOW.timestamp())
    token = provider.token({"iss": provider.issuer, "aud": "portworx", "sub": "u", "name": "n", "email": "e",
                            "iat": t, "exp": t + 60}, "RS256")
    verdict = verify(token, spec, VerifyKeys(), NOW, jwks=result.jwks, oidc_algorithms=result.algorithms)
    assert not verdict.accepted
    assert "is not accepted for OIDC issuer" in verdict.reason


def test_unannounced_algorithms_are_assumed_rs256(provider: OIDCProvider) -> None:
    provider.algorithms = None
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.ok and result.algorithms == ("RS256",)
    assert "so go-oidc assumes RS256" in result.message


def test_an_https_redirect_is_followed(provider: OIDCProvider) -> None:
    provider.redirect_discovery_to = provider.base_url + ALIAS_PATH + WELL_KNOWN
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.ok, result.message
    assert provider.requests == [provider.realm_path + WELL_KNOWN, ALIAS_PATH + WELL_KNOWN,
                                 provider.realm_path + JWKS_PATH]


# -- trust -----------------------------------------------------------------------------------------------


def test_without_the_ca_system_trust_refuses_the_certificate_and_says_what_to_set(provider: OIDCProvider) -> None:
    result = prober().probe(provider.issuer, None, NOW)
    assert not result.ok and result.reason == oidc.DISCOVERY_FAILED
    assert result.message.startswith(f"cannot read the OIDC discovery document: {provider.discovery_url}: "
                                     "certificate verify failed: ")
    assert result.message.endswith("(is spec.oidc.certificateAuthority set?)")
    assert provider.requests == []  # TLS stopped it before any HTTP request
    assert oidc.status_fields(result) == {"lastProbeTime": "2030-05-17T12:00:00Z"}


def test_a_ca_bundle_is_trusted_alone_not_in_addition_to_another_ca(provider: OIDCProvider) -> None:
    other = make_ca("some other CA")[1].public_bytes(serialization.Encoding.PEM)
    result = prober().probe(provider.issuer, other, NOW)
    assert result.reason == oidc.DISCOVERY_FAILED
    assert "certificate verify failed" in result.message
    assert result.message.endswith(
        "(does spec.oidc.certificateAuthority hold the CA that signed the provider's certificate?)")
    assert provider.requests == []
    both = prober().probe(provider.issuer, other + provider.ca_pem, NOW)
    assert both.ok, both.message


def test_a_bundle_with_utf8_comments_between_certificates_is_loaded(provider: OIDCProvider) -> None:
    bundle = "# Certigna Root CA — Ärger-frei\n".encode() + provider.ca_pem + "# ∎\n".encode()
    result = prober().probe(provider.issuer, bundle, NOW)
    assert result.ok, result.message


@pytest.mark.parametrize(("ca_pem", "words"), [
    (b"", "the CA bundle from spec.oidc.certificateAuthority is empty"),
    (b"not a certificate", "the CA bundle from spec.oidc.certificateAuthority holds no PEM certificate"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "the CA bundle from spec.oidc.certificateAuthority holds a PEM certificate that cannot be parsed"),
])
def test_an_unusable_ca_bundle_is_reported_without_connecting(provider: OIDCProvider, ca_pem: bytes,
                                                                 words: str) -> None:
    result = prober().probe(provider.issuer, ca_pem, NOW)
    assert result.reason == oidc.CA_INVALID
    assert result.message.startswith(words)
    assert result.message.endswith(f"; the OIDC provider {provider.issuer} was not probed")
    assert provider.requests == [] and provider.handshake_failures == 0


# -- what the provider serves ----------------------------------------------------------------------------


def test_an_issuer_mismatch_is_reported_and_the_jwks_is_not_fetched(provider: OIDCProvider) -> None:
    provider.stated_issuer = provider.issuer + "/"
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.ISSUER_MISMATCH and result.issuer_matches is False
    assert f'states issuer "{provider.issuer}/", but spec.oidc.issuer is "{provider.issuer}"' in result.message
    assert "(they differ only by a trailing slash, which counts)" in result.message
    assert paths(provider) == [WELL_KNOWN]
    assert oidc.status_fields(result)["issuerMatches"] is False


def test_a_failing_jwks_endpoint_is_jwks_failed(provider: OIDCProvider) -> None:
    provider.jwks_status = 500
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.JWKS_FAILED
    assert result.message == (f"cannot read the provider's JWKS: {provider.jwks_uri}: "
                              "HTTP 500 Internal Server Error, expected 200")
    assert result.issuer_matches is True and result.jwks_key_count is None


def test_an_empty_jwks_has_no_usable_keys(provider: OIDCProvider) -> None:
    provider.jwks_override = {"keys": []}
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.NO_USABLE_KEYS
    assert result.jwks_key_count == 0
    assert oidc.status_fields(result)["jwksKeyCount"] == 0


def test_an_hs256_only_provider_has_no_supported_algorithms(provider: OIDCProvider) -> None:
    provider.algorithms = ["HS256"]
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.NO_SUPPORTED_ALGORITHMS
    assert "announces only HS256" in result.message


def test_a_missing_discovery_document_is_discovery_failed(provider: OIDCProvider) -> None:
    provider.discovery_status = 404
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.DISCOVERY_FAILED
    assert result.message == (f"cannot read the OIDC discovery document: {provider.discovery_url}: "
                              "HTTP 404 Not Found, expected 200")


def test_a_document_that_is_not_json_is_discovery_failed(provider: OIDCProvider) -> None:
    provider.discovery_override = b"<html>login here</html>"
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.DISCOVERY_FAILED
    assert result.message.endswith(f"{provider.discovery_url}: the response is not JSON (Content-Type text/html)")


def test_an_http_jwks_uri_is_refused_without_fetching(provider: OIDCProvider) -> None:
    provider.jwks_uri_override = f"http://127.0.0.1:{provider.port}{provider.realm_path}{JWKS_PATH}"
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.JWKS_FAILED
    assert "which is not an https URL" in result.message
    assert paths(provider) == [WELL_KNOWN]


def test_a_redirect_to_http_is_not_followed(provider: OIDCProvider) -> None:
    port = free_port()  # nothing listens there, and nothing may be asked
    provider.redirect_discovery_to = f"http://127.0.0.1:{port}/realms/px{WELL_KNOWN}"
    result = prober().probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.DISCOVERY_FAILED
    assert result.message == (f"cannot read the OIDC discovery document: {provider.discovery_url}: redirected "
                              f"(HTTP 302) to {provider.redirect_discovery_to}, which is not https; refusing to follow")


def test_an_answer_too_large_is_refused(provider: OIDCProvider) -> None:
    provider.padding = 10_000
    result = prober(max_bytes=4096).probe(provider.issuer, provider.ca_pem, NOW)
    assert result.reason == oidc.JWKS_FAILED
    assert result.message.endswith(f"{provider.jwks_uri}: the response is larger than 4096 bytes")


def test_a_slow_provider_times_out(provider: OIDCProvider) -> None:
    provider.delay = 5
    started = time.monotonic()
    result = prober(timeout=0.3).probe(provider.issuer, provider.ca_pem, NOW)
    assert time.monotonic() - started < 3
    assert result.reason == oidc.DISCOVERY_FAILED
    assert result.message.endswith(f"{provider.discovery_url}: no answer within 0.3 s")


def test_a_closed_port_is_connection_refused() -> None:
    issuer = f"https://127.0.0.1:{free_port()}/realms/px"
    result = prober().probe(issuer, None, NOW)
    assert result.reason == oidc.DISCOVERY_FAILED
    assert result.message == (f"cannot read the OIDC discovery document: {oidc.discovery_url(issuer)}: "
                              "connection refused by 127.0.0.1")


# -- the cache -------------------------------------------------------------------------------------------


def test_a_fresh_result_is_reused_without_asking_the_provider(provider: OIDCProvider) -> None:
    p = prober()
    assert p.next_probe(provider.issuer, provider.ca_pem) is None
    first = p.probe(provider.issuer, provider.ca_pem, NOW)
    assert provider.request_count() == 2
    assert p.next_probe(provider.issuer, provider.ca_pem) == NOW + dt.timedelta(minutes=10)
    again = p.probe(provider.issuer, provider.ca_pem, NOW + dt.timedelta(minutes=9, seconds=59))
    assert again is first  # probed_at (status lastProbeTime) unchanged: no status churn
    assert provider.request_count() == 2
    later = p.probe(provider.issuer, provider.ca_pem, NOW + dt.timedelta(minutes=10))
    assert later.probed_at == NOW + dt.timedelta(minutes=10)
    assert provider.request_count() == 4
    assert p.next_probe(provider.issuer, provider.ca_pem) == NOW + dt.timedelta(minutes=20)


def test_a_failure_is_retried_sooner(provider: OIDCProvider) -> None:
    p = prober()
    provider.jwks_status = 503
    failed = p.probe(provider.issuer, provider.ca_pem, NOW)
    assert not failed.ok
    assert p.next_probe(provider.issuer, provider.ca_pem) == NOW + dt.timedelta(seconds=30)
    provider.jwks_status = 200
    assert p.probe(provider.issuer, provider.ca_pem, NOW + dt.timedelta(seconds=29)) is failed
    assert provider.request_count() == 2
    recovered = p.probe(provider.issuer, provider.ca_pem, NOW + dt.timedelta(seconds=30))
    assert recovered.ok
    assert provider.request_count() == 4


def test_cache_lifetimes_are_configurable(provider: OIDCProvider) -> None:
    p = prober(fresh_after_success=dt.timedelta(seconds=5), fresh_after_failure=dt.timedelta(seconds=1))
    p.probe(provider.issuer, provider.ca_pem, NOW)
    assert p.next_probe(provider.issuer, provider.ca_pem) == NOW + dt.timedelta(seconds=5)


def test_results_are_cached_per_ca_bundle(provider: OIDCProvider) -> None:
    p = prober()
    untrusted = p.probe(provider.issuer, None, NOW)
    assert not untrusted.ok
    trusted = p.probe(provider.issuer, provider.ca_pem, NOW)  # the user set the CA: probe afresh at once
    assert trusted.ok
    assert p.next_probe(provider.issuer, None) == NOW + dt.timedelta(seconds=30)
    assert p.next_probe(provider.issuer, provider.ca_pem) == NOW + dt.timedelta(minutes=10)


def test_forget_makes_the_next_probe_ask_again(provider: OIDCProvider) -> None:
    p = prober()
    p.probe(provider.issuer, provider.ca_pem, NOW)
    p.forget(provider.issuer, provider.ca_pem)
    assert p.next_probe(provider.issuer, provider.ca_pem) is None
    p.probe(provider.issuer, provider.ca_pem, NOW)
    assert provider.request_count() == 4


def test_a_clock_that_went_backwards_makes_the_result_stale(provider: OIDCProvider) -> None:
    p = prober()
    p.probe(provider.issuer, provider.ca_pem, NOW)
    p.probe(provider.issuer, provider.ca_pem, NOW - dt.timedelta(hours=1))
    assert provider.request_count() == 4


def test_concurrent_probes_of_one_provider_share_one_fetch(provider: OIDCProvider) -> None:
    provider.delay = 0.2
    p = prober()
    results: list[oidc.ProbeResult] = []
    lock = threading.Lock()

    def run() -> None:
        result = p.probe(provider.issuer, provider.ca_pem, NOW)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8 and all(r.ok for r in results)
    assert len({id(r) for r in results}) == 1
    assert provider.request_count() == 2


def test_the_cache_stays_bounded() -> None:
    p = prober(max_entries=2)
    issuers = [f"https://idp-{i}.example.invalid/realms/px" for i in range(3)]
    for i, issuer in enumerate(issuers):  # an empty CA bundle fails before any connection
        p.probe(issuer, b"", NOW + dt.timedelta(seconds=i))
    assert p.next_probe(issuers[0], b"") is None
    assert p.next_probe(issuers[1], b"") is not None
    assert p.next_probe(issuers[2], b"") is not None
