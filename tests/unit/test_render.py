"""The renderer: golden files for every example x every target, the Portworx facts the output rests on,
determinism, and that no rendering can carry a secret value.

Golden files live in tests/golden/<example-stem>/<target>.yaml and are exactly what `pxsec render -f
examples/<example>.yaml --target <target>` prints (namespace `default`). After an intended change,
regenerate them with `PXSEC_UPDATE_GOLDEN=1 pytest tests/unit/test_render.py`, read the diff, and commit.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec import keymaterial, keyplan
from pxsec.cli.render import defaulted_spec, first_pxsecurity
from pxsec.crdschema import SPEC_SCHEMA
from pxsec.render import (
    APPS_ISSUER,
    TARGETS,
    configmap_name,
    content_hash,
    render,
    render_all,
    render_text,
)
from pxsec.spec import PxSecuritySpec, parse_spec
from pxsec.validation import apply_defaults

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("PXSEC_UPDATE_GOLDEN") == "1"
NAMESPACE = "default"  # what `pxsec render` uses for the examples, which name no namespace


def load_example(path: Path) -> tuple[PxSecuritySpec, str]:
    """(spec, CR name) of an example, read and defaulted exactly as `pxsec render` does."""
    found = first_pxsecurity(path.read_text(encoding="utf-8"))
    assert found is not None, path
    _, doc = found
    return parse_spec(defaulted_spec(doc)), str(doc["metadata"]["name"])


def spec_of(raw: dict[str, Any]) -> PxSecuritySpec:
    """A spec from a `spec` mapping, with the CRD's defaults, as the API server would store it."""
    raw = copy.deepcopy(raw)
    apply_defaults(raw, SPEC_SCHEMA)
    return parse_spec(raw)


def env_of(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = [item["name"] for item in items]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {item["name"]: item for item in items}


SHARED: dict[str, Any] = {"selfSigned": {"sharedSecret": {}}}
FULL: dict[str, Any] = {
    "storageCluster": {"name": "px-cluster"},
    "usernameClaim": "name",
    "system": {"secretName": "my-system"},
    "oidc": {"issuer": "https://idp.example.com", "clientID": "px", "customClaimNamespace": "https://idp.example.com/"},
    "selfSigned": {
        "issuer": "tokens.example",
        "tokenLifetime": "1d",
        "sharedSecret": {"secretName": "my-shared"},
        "rsa": {"secretName": "my-rsa"},
        "ecdsa": {"secretName": "my-ecdsa"},
    },
}


# --------------------------------------------------------------------------------------------------
# Golden files
# --------------------------------------------------------------------------------------------------


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden(example: Path, target: str) -> None:
    spec, name = load_example(example)
    text = render_text(spec, NAMESPACE, target, cr_name=name)
    golden = GOLDEN / example.stem / f"{target}.yaml"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"{golden} is missing: run with PXSEC_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(encoding="utf-8"), f"{golden} differs from the rendering"


def test_no_stale_golden_files() -> None:
    expected = {f"{e.stem}/{t}.yaml" for e in EXAMPLES for t in TARGETS}
    # tests/golden/plan/ holds pxsec plan's goldens (tests/unit/cli/test_cli_plan.py checks those)
    present = {str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*") if p.is_file() and p.parent.name != "plan"}
    assert present == expected


# --------------------------------------------------------------------------------------------------
# Text, ConfigMap data and hash
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_text_round_trips_and_is_deterministic(example: Path) -> None:
    spec, name = load_example(example)
    for target in TARGETS:
        obj = render(spec, "portworx", target, cr_name=name)
        as_yaml = render_text(spec, "portworx", target, "yaml", cr_name=name)
        as_json = render_text(spec, "portworx", target, "json", cr_name=name)
        assert yaml.safe_load(as_yaml) == obj
        assert json.loads(as_json) == obj
        assert as_yaml.endswith("\n") and not as_yaml.endswith("\n\n")
        assert as_json.endswith("}\n")
        assert "&id" not in as_yaml and "*id" not in as_yaml, "YAML anchors would confuse people"
        # Same input, same bytes — also from a spec parsed anew.
        again, _ = load_example(example)
        assert render_text(again, "portworx", target, "yaml", cr_name=name) == as_yaml


def test_render_all_is_one_yaml_key_per_target() -> None:
    spec, name = load_example(EXAMPLES[0])
    data = render_all(spec, "portworx", cr_name=name)
    assert list(data) == [f"{t}.yaml" for t in TARGETS]
    for target in TARGETS:
        assert data[f"{target}.yaml"] == render_text(spec, "portworx", target, "yaml", cr_name=name)


def test_yaml_quotes_what_kubectl_would_read_as_booleans() -> None:
    spec = spec_of({"oidc": {"issuer": "https://idp.example.com", "clientID": "y"}})
    text = render_text(spec, "ns", "px-runc")
    assert "- 'y'" in text
    assert yaml.safe_load(text)["args"][3] == "y"


def test_content_hash() -> None:
    spec, name = load_example(EXAMPLES[0])
    data = render_all(spec, "portworx", cr_name=name)
    digest = content_hash(data)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert content_hash(dict(reversed(list(data.items())))) == digest, "independent of key order"
    assert content_hash(render_all(spec, "other", cr_name=name)) != digest
    changed = dict(data)
    changed["stork.yaml"] += " "
    assert content_hash(changed) != digest
    # Pinned: the hash of a fixed input must never change between releases (status would churn).
    assert content_hash({"a.yaml": "x: 1\n"}) == (
        "sha256:" + __import__("hashlib").sha256(b'{"a.yaml":"x: 1\\n"}').hexdigest()
    )


def test_configmap_name() -> None:
    assert configmap_name("px-cluster") == "px-cluster-px-security"
    long = "a" * 250
    name = configmap_name(long)
    assert len(name) <= 253
    assert name.endswith("-px-security")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name)
    assert configmap_name("a" * 249 + "b") != name, "shortened names stay distinct"


def test_unknown_target_and_format() -> None:
    spec = spec_of(SHARED)
    with pytest.raises(ValueError, match="unknown target"):
        render(spec, "ns", "helm")
    with pytest.raises(ValueError, match="unknown format"):
        render_text(spec, "ns", "stork", "toml")


# --------------------------------------------------------------------------------------------------
# Nothing secret
# --------------------------------------------------------------------------------------------------


def test_renderer_sees_only_the_spec() -> None:
    """The renderer's inputs are the spec, a namespace, a target and names: no Secret data can reach it."""
    assert list(inspect.signature(render).parameters) == ["spec", "namespace", "target", "cr_name"]
    assert list(inspect.signature(render_all).parameters) == ["spec", "namespace", "cr_name"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_no_secret_value_in_any_rendering(example: Path) -> None:
    spec, name = load_example(example)
    # The key material the operator would generate for this spec (real recipes, real generators).
    values: list[bytes] = []
    for req in keyplan.requirements(spec):
        values += keymaterial.materialize(keyplan.plan_secret(req, None, None, spec).recipes, {}).values()
    assert values, "the spec plans key material"
    texts = [render_text(spec, "portworx", t, f, cr_name=name) for t in TARGETS for f in ("yaml", "json")]
    texts += list(render_all(spec, "portworx", cr_name=name).values())
    for text in texts:
        assert "-----BEGIN" not in text and "PRIVATE KEY" not in text
        assert not re.search(r"[A-Za-z0-9+/]{40,}", text), "something that looks like a key or secret"
        for value in values:
            decoded = value.decode()
            needles = [line for line in decoded.splitlines() if line and not line.startswith("-----")]
            for needle in needles or [decoded]:
                assert needle not in text


# --------------------------------------------------------------------------------------------------
# The facts each target rests on
# --------------------------------------------------------------------------------------------------


def test_storagecluster_shape_and_security() -> None:
    out = render(spec_of(FULL), "portworx", "storagecluster")
    assert out["apiVersion"] == "core.libopenstorage.org/v1" and out["kind"] == "StorageCluster"
    assert out["metadata"] == {"name": "px-cluster", "namespace": "portworx"}
    assert out["spec"]["security"] == {
        "enabled": True,
        "auth": {
            "guestAccess": "Enabled",
            # the real field is auth.selfSigned.tokenLifetime (not auth.tokenLifetime); sharedSecret is a NAME
            "selfSigned": {"issuer": "tokens.example", "tokenLifetime": "1d", "sharedSecret": "my-shared"},
        },
    }
    assert set(out["spec"]) == {"security", "env", "volumes"}


def test_storagecluster_env_for_oidc_claim_and_key_files() -> None:
    out = render(spec_of(FULL), "portworx", "storagecluster")
    env = env_of(out["spec"]["env"])
    assert env["PORTWORX_AUTH_OIDC_ISSUER"]["value"] == "https://idp.example.com"
    assert env["PORTWORX_AUTH_OIDC_CLIENTID"]["value"] == "px"
    assert env["PORTWORX_AUTH_OIDC_CUSTOM_NAMESPACE"]["value"] == "https://idp.example.com/"
    assert env["PORTWORX_AUTH_USERNAME_CLAIM"]["value"] == "name"
    assert "PORTWORX_AUTH_JWT_ECDSA_PUBKEY" not in env, "Portworx spells it ECDS"
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    for env_name, secret in (("PORTWORX_AUTH_JWT_RSA_PUBKEY", "my-rsa"), ("PORTWORX_AUTH_JWT_ECDS_PUBKEY", "my-ecdsa")):
        path = env[env_name]["value"]
        assert path.startswith("/etc/pwx/") and path.endswith("/public.pem"), "a file path, not a PEM"
        mounts = [v for v in volumes.values() if path == f"{v['mountPath']}/{v['secret']['items'][0]['path']}"]
        assert len(mounts) == 1, f"{env_name} points at a file no volume provides"
        assert mounts[0]["readOnly"] is True
        assert mounts[0]["secret"] == {"secretName": secret, "items": [{"key": "public.pem", "path": "public.pem"}]}


def test_storagecluster_does_not_repeat_what_the_portworx_operator_injects() -> None:
    """With px-system-secrets, the Portworx Operator injects the system/apps keys, the shared secret
    (from selfSigned.sharedSecret) and the issuer (selfSigned.issuer) itself."""
    out = render(spec_of({**FULL, "system": {}}), "portworx", "storagecluster")
    names = set(env_of(out["spec"]["env"]))
    for injected in ("PORTWORX_AUTH_SYSTEM_KEY", "PORTWORX_AUTH_SYSTEM_APPS_KEY",
                     "PORTWORX_AUTH_JWT_SHAREDSECRET", "PORTWORX_AUTH_JWT_ISSUER"):
        assert injected not in names


def test_storagecluster_points_the_portworx_operator_at_a_custom_system_secret() -> None:
    """Another system Secret name: spec.env entries of the same name come first in the Portworx
    Operator's lookup, so they point it at our Secret."""
    env = env_of(render(spec_of(FULL), "portworx", "storagecluster")["spec"]["env"])
    assert env["PORTWORX_AUTH_SYSTEM_KEY"] == {
        "name": "PORTWORX_AUTH_SYSTEM_KEY",
        "valueFrom": {"secretKeyRef": {"name": "my-system", "key": "system-secret"}},
    }
    assert env["PORTWORX_AUTH_SYSTEM_APPS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-system", "key": "apps-secret"}


def test_storagecluster_without_self_signed_or_keys() -> None:
    oidc_only = {"oidc": {"issuer": "https://idp.example.com", "clientID": "px"}}
    out = render(spec_of(oidc_only), None, "storagecluster", cr_name="from-cr")
    assert out["metadata"] == {"name": "from-cr", "namespace": "default"}
    assert out["spec"]["security"] == {"enabled": True, "auth": {"guestAccess": "Enabled"}}
    assert "volumes" not in out["spec"], "an empty atomic list would wipe the user's volumes"
    names = [e["name"] for e in out["spec"]["env"]]
    assert names == ["PORTWORX_AUTH_OIDC_ISSUER", "PORTWORX_AUTH_OIDC_CLIENTID", "PORTWORX_AUTH_USERNAME_CLAIM"]
    keys_only = {"selfSigned": {"rsa": {"secretName": "k"}}}
    self_signed = render(spec_of(keys_only), "ns", "storagecluster", cr_name="x")["spec"]["security"]["auth"]
    assert self_signed["selfSigned"] == {"issuer": "operator.portworx.io", "tokenLifetime": "24h"}
    with pytest.raises(ValueError, match=r"spec.storageCluster.name"):
        render(spec_of(oidc_only), "ns", "storagecluster")


def test_daemonset_has_every_setting_and_secrets_only_by_reference() -> None:
    out = render(spec_of(FULL), "portworx", "daemonset")
    env = env_of(out["env"])
    refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "valueFrom" in e}
    assert refs == {
        "PORTWORX_AUTH_SYSTEM_KEY": {"name": "my-system", "key": "system-secret"},
        "PORTWORX_AUTH_SYSTEM_APPS_KEY": {"name": "my-system", "key": "apps-secret"},
        "PORTWORX_AUTH_JWT_SHAREDSECRET": {"name": "my-shared", "key": "shared-secret"},
    }
    plain = {n: e["value"] for n, e in env.items() if "value" in e}
    assert plain == {
        "PORTWORX_AUTH_JWT_ISSUER": "tokens.example",
        "PORTWORX_AUTH_OIDC_ISSUER": "https://idp.example.com",
        "PORTWORX_AUTH_OIDC_CLIENTID": "px",
        "PORTWORX_AUTH_OIDC_CUSTOM_NAMESPACE": "https://idp.example.com/",
        "PORTWORX_AUTH_USERNAME_CLAIM": "name",
        "PORTWORX_AUTH_JWT_RSA_PUBKEY": "/etc/pwx/pxsec/rsa/public.pem",
        "PORTWORX_AUTH_JWT_ECDS_PUBKEY": "/etc/pwx/pxsec/ecdsa/public.pem",
    }
    mounts = {m["name"]: m for m in out["volumeMounts"]}
    volumes = {v["name"]: v for v in out["volumes"]}
    assert set(mounts) == set(volumes) == {"pxsec-rsa-pubkey", "pxsec-ecdsa-pubkey"}
    assert mounts["pxsec-rsa-pubkey"] == {
        "name": "pxsec-rsa-pubkey", "mountPath": "/etc/pwx/pxsec/rsa", "readOnly": True}
    assert volumes["pxsec-ecdsa-pubkey"]["secret"] == {
        "secretName": "my-ecdsa", "items": [{"key": "public.pem", "path": "public.pem"}]}


def test_daemonset_without_self_signed_has_no_issuer_or_shared_secret() -> None:
    out = render(spec_of({"oidc": {"issuer": "https://idp.example.com", "clientID": "px"}}), "ns", "daemonset")
    names = [e["name"] for e in out["env"]]
    assert "PORTWORX_AUTH_JWT_ISSUER" not in names and "PORTWORX_AUTH_JWT_SHAREDSECRET" not in names
    assert names[:2] == ["PORTWORX_AUTH_SYSTEM_KEY", "PORTWORX_AUTH_SYSTEM_APPS_KEY"]
    assert out["volumes"] == [] and out["volumeMounts"] == []


def test_px_runc_arguments() -> None:
    out = render(spec_of(FULL), "portworx", "px-runc")
    args = out["args"]
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs == {
        "-oidc_issuer": "https://idp.example.com",
        "-oidc_client_id": "px",
        "-oidc_custom_claim_namespace": "https://idp.example.com/",
        "-jwt_issuer": "tokens.example",
        "-jwt_rsa_pubkey_file": "/etc/pwx/pxsec/rsa/public.pem",
        "-jwt_ecds_pubkey_file": "/etc/pwx/pxsec/ecdsa/public.pem",
        "-username_claim": "name",
    }
    for flag in pairs:
        assert re.fullmatch(r"-[a-z_]+", flag), "single dash, underscores"
    assert [e["name"] for e in out["env"]] == [
        "PORTWORX_AUTH_SYSTEM_KEY", "PORTWORX_AUTH_SYSTEM_APPS_KEY", "PORTWORX_AUTH_JWT_SHAREDSECRET"]
    assert all("valueFrom" in e for e in out["env"]), "secrets only as environment variables"
    assert out["files"] == [
        {"path": "/etc/pwx/pxsec/rsa/public.pem", "secretKeyRef": {"name": "my-rsa", "key": "public.pem"}},
        {"path": "/etc/pwx/pxsec/ecdsa/public.pem", "secretKeyRef": {"name": "my-ecdsa", "key": "public.pem"}},
    ]


def test_px_runc_minimal() -> None:
    out = render(spec_of(SHARED), "ns", "px-runc")
    assert out["args"] == ["-jwt_issuer", "operator.portworx.io", "-username_claim", "sub"]
    assert out["files"] == []


@pytest.mark.parametrize("system", [{}, {"secretName": "my-system"}])
def test_stork_uses_the_apps_key_and_the_apps_issuer(system: dict[str, str]) -> None:
    """Portworx verifies iss=apps.portworx.io with PORTWORX_AUTH_SYSTEM_APPS_KEY (the apps-secret): so
    Stork signs with that key under that issuer — whatever the self-signed issuer is."""
    spec = spec_of({**FULL, "system": system})
    out = render(spec, "portworx", "stork")
    assert out == {
        "env": [
            {"name": "PX_SHARED_SECRET",
             "valueFrom": {"secretKeyRef": {"name": spec.system_secret, "key": "apps-secret"}}},
            {"name": "PX_JWT_ISSUER", "value": APPS_ISSUER},
        ]
    }
    assert APPS_ISSUER == "apps.portworx.io"
    assert render(spec, "portworx", "daemonset")["env"][1]["valueFrom"]["secretKeyRef"] == \
        out["env"][0]["valueFrom"]["secretKeyRef"], "Stork's secret is Portworx's apps key"


def test_storageclass_uses_the_first_user_token() -> None:
    spec = spec_of({
        "selfSigned": {"sharedSecret": {}},
        "tokens": [
            {"secretName": "admin", "roles": ["system.admin"]},
            {"secretName": "csi-token", "roles": ["system.view", "system.user"]},
            {"secretName": "second-user", "roles": ["system.user"]},
        ],
    })
    out = render(spec, "storage", "storageclass")
    assert out["tokenSecret"] == {"name": "csi-token", "namespace": "storage", "key": "auth-token",
                                  "mintedBy": "px-security-operator"}
    assert "note" not in out
    assert out["csi"]["parameters"] == {
        "csi.storage.k8s.io/provisioner-secret-name": "csi-token",
        "csi.storage.k8s.io/provisioner-secret-namespace": "storage",
        "csi.storage.k8s.io/node-publish-secret-name": "csi-token",
        "csi.storage.k8s.io/node-publish-secret-namespace": "storage",
        "csi.storage.k8s.io/controller-expand-secret-name": "csi-token",
        "csi.storage.k8s.io/controller-expand-secret-namespace": "storage",
    }
    assert out["inTree"]["parameters"] == {
        "openstorage.io/auth-secret-name": "csi-token", "openstorage.io/auth-secret-namespace": "storage"}


def test_storageclass_without_a_user_token_says_so() -> None:
    spec = spec_of({"selfSigned": {"sharedSecret": {}}, "tokens": [{"secretName": "a", "roles": ["system.admin"]}]})
    out = render(spec, "storage", "storageclass")
    assert out["tokenSecret"]["name"] == "px-user-token"
    assert out["tokenSecret"]["mintedBy"] == "Portworx Operator"
    assert "no spec.tokens entry has role system.user" in out["note"]
    assert out["csi"]["parameters"]["csi.storage.k8s.io/provisioner-secret-name"] == "px-user-token"


def test_every_target_renders_for_a_minimal_spec() -> None:
    for raw in (SHARED, {"oidc": {"issuer": "https://idp.example.com", "clientID": "px"}}):
        spec = spec_of(raw)
        for target in TARGETS:
            assert render(spec, "ns", target, cr_name="c"), target


def test_storageclass_beside_the_portworx_operator_uses_its_user_token() -> None:
    """With a StorageCluster targeted, px-user-token is the Portworx Operator's, whatever spec.tokens holds."""
    spec = spec_of({"storageCluster": {"name": "px-cluster"}, "selfSigned": {"sharedSecret": {}},
                    "tokens": [{"secretName": "csi-token", "roles": ["system.user"]}]})
    out = render(spec, "storage", "storageclass")
    assert out["tokenSecret"] == {"name": "px-user-token", "namespace": "storage", "key": "auth-token",
                                  "mintedBy": "Portworx Operator"}
    assert "note" not in out


@pytest.mark.parametrize("name", ["1e3", "2e5", "0o17", "0x1f", "0b101", "1_000", "123", "1.5", "y", "n", ".5",
                                  "1e-3", "-1", "+1", ".inf", ".nan"])
def test_a_name_another_yaml_reader_takes_for_a_number_is_quoted(name: str) -> None:
    """Valid-looking Secret names (`1e3` is a DNS label) must come back from kubectl as strings."""
    from pxsec.render import to_text

    text = to_text({"secretName": name})
    assert text in (f"secretName: '{name}'\n", f'secretName: "{name}"\n'), text
    assert to_text({"secretName": f"px-{name}"}) == f"secretName: px-{name}\n"  # not over-quoted


def test_what_the_c_dumper_writes_reads_back_as_the_same_data() -> None:
    """render uses libyaml's emitter for speed (the CLI and the operator share it, so they stay byte-equal);
    whatever it writes must read back as exactly the data, strings that look like numbers included."""
    import yaml
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pxsec.render import to_text

    scalars = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.none(),
                        st.sampled_from(["1e3", "0o17", "y", "~", "- a", "a: b", "#x", "'q'", "\u00e9\u4e2d", "\t"]))
    docs = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                        max_leaves=20)

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(st.dictionaries(st.text(max_size=10), docs, min_size=1, max_size=5))  # renderings are mappings
    def round_trip(doc: Any) -> None:
        assert yaml.safe_load(to_text(doc)) == doc

    round_trip()
