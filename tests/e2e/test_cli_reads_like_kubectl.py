"""`pxsec validate` reads raw YAML text as kubectl 1.37 does, proven against the real kubectl and API
server: the same file, given to `kubectl apply --dry-run=server -f` and to `pxsec validate -f`, gets the
same verdict, and the same words where the API server is the one that speaks. The rows of
tests/cases go through `yaml.safe_dump` first; these texts reach kubectl as they are written.

Where pxsec is stricter on purpose the test shows both sides: a key written twice (kubectl apply -f keeps
the last one silently, kubectl apply -k refuses it, pxsec refuses it).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from pxsec import kubeyaml
from pxsec.cli.validate import run_validate
from pxsec.devcluster.cluster import Cluster
from pxsec.validation import SPEC_SCHEMA, apply_defaults
from tests.e2e.test_admission import disagreements, server_problems

pytestmark = pytest.mark.e2e

HEADER = "apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\n"


def doc(name: str, spec: str, metadata: str = "") -> str:
    return HEADER + f"metadata: {{name: {name}{metadata}}}\nspec:\n{spec}"


def pxsec_validate(text: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    code = run_validate("-", stdin=io.StringIO(text), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue().splitlines()


def offline_lines(text: str) -> list[str]:
    """pxsec's problems as `field: message` lines (what the API server prints), without the file prefix."""
    err = io.StringIO()
    run_validate("-", stdin=io.StringIO(text), stdout=io.StringIO(), stderr=err)
    lines = []
    for line in err.getvalue().splitlines():
        rest = line.removeprefix("<stdin>: ")
        if rest.startswith("document "):
            rest = rest.split("): ", 1)[1] if "): " in rest else rest.split(": ", 1)[1]
        lines.append(rest)
    return lines


def kubectl_apply(cluster: Cluster, namespace: str, text: str, *flags: str) -> Any:
    return cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-o", "json", *flags, "-f", "-",
                           input=text, check=False)


ACCEPTED = {
    # name: (text, what the API server stores, as pxsec reads and defaults it)
    "size-0o4000": (doc("size-octal", "  selfSigned: {rsa: {secretName: px-jwt-rsa, size: 0o4000}}\n"),
                    ("selfSigned", "rsa", "size"), 2048),
    "size-04000": (doc("size-leading-zero", "  selfSigned: {rsa: {secretName: px-jwt-rsa, size: 04000}}\n"),
                   ("selfSigned", "rsa", "size"), 2048),
    "size-2.048e3": (doc("size-float", "  selfSigned: {rsa: {secretName: px-jwt-rsa, size: 3.072e3}}\n"),
                     ("selfSigned", "rsa", "size"), 3072),
    "apply-y": (doc("apply-y", "  storageCluster: {name: px, apply: y}\n  selfSigned: {sharedSecret: {}}\n"),
                ("storageCluster", "apply"), True),
    "apply-off": (doc("apply-off", "  storageCluster: {name: px, apply: off}\n  selfSigned: {sharedSecret: {}}\n"),
                  ("storageCluster", "apply"), False),
    "alias": (doc("alias", "  selfSigned: {sharedSecret: {}}\n  secretTemplate:\n    labels: &l {team: storage}\n"
                  "    annotations: *l\n"), ("secretTemplate", "annotations"), {"team": "storage"}),
    "merge": (doc("merge", "  selfSigned: {sharedSecret: {}, issuer: a.b}\n  tokens:\n"
                  "    - {<<: {roles: [x], secretName: px-u}, secretName: px-t}\n"),
              ("tokens", 0, "secretName"), "px-t"),
    "list-items": ("apiVersion: v1\nkind: List\nitems:\n- " + doc("list-item", "  oidc: {issuer: 'https://a.example', "
                   "clientID: portworx}\n").replace("\n", "\n  ").rstrip() + "\n", ("oidc", "clientID"), "portworx"),
    "crlf": (doc("crlf", "  selfSigned: {sharedSecret: {}}\n  guestAccess: Managed\n").replace("\n", "\r\n"),
             ("guestAccess",), "Managed"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_alike_and_stored_as_pxsec_reads_it(cluster: Cluster, crds_installed: Any, namespace: str,
                                                     name: str) -> None:
    text, path, expected = ACCEPTED[name]
    code, lines = pxsec_validate(text)
    assert code == 0, lines
    result = kubectl_apply(cluster, namespace, text)
    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout)
    served = served["items"][0] if served.get("kind") == "List" else served
    [found] = [item.value for item in kubeyaml.objects(text) if item.value.get("kind") == "PxSecurity"]
    ours = copy.deepcopy(found["spec"])
    apply_defaults(ours, SPEC_SCHEMA)
    assert served["spec"] == ours
    value: Any = served["spec"]
    for step in path:
        value = value[step]
    assert value == expected


REJECTED = {
    # name: (text, words both sides print)
    "secret-name-1e3": (doc("name-float", "  selfSigned: {sharedSecret: {secretName: 1e3}}\n"),
                        'spec.selfSigned.sharedSecret.secretName in body must be of type string: "integer"'),
    "secret-name-0o17": (doc("name-octal", "  selfSigned: {sharedSecret: {secretName: 0o17}}\n"),
                         'spec.selfSigned.sharedSecret.secretName in body must be of type string: "integer"'),
    "issuer-n": (doc("issuer-n", "  selfSigned: {sharedSecret: {}, issuer: n}\n"),
                 'spec.selfSigned.issuer in body must be of type string: "boolean"'),
    "label-value-yes": (doc("label-yes", "  selfSigned: {sharedSecret: {}}\n  secretTemplate: {labels: {a: yes}}\n"),
                        'spec.secretTemplate.labels.a in body must be of type string: "boolean"'),
    "list-bad-item": ("apiVersion: v1\nkind: List\nitems:\n- " + doc("list-bad", "  guestAccess: Maybe\n  selfSigned:"
                      " {sharedSecret: {}}\n").replace("\n", "\n  ").rstrip() + "\n",
                      'spec.guestAccess: Unsupported value: "Maybe"'),
    "escape-in-name": (HEADER + 'metadata: {name: "a\\e[2Jb"}\nspec: {selfSigned: {sharedSecret: {}}}\n',
                       'metadata.name: Invalid value: "a\\x1b[2Jb"'),
    "label-key": (doc("label-key", "  selfSigned: {sharedSecret: {}}\n", ", labels: {'a b': c}"),
                  'metadata.labels: Invalid value: "a b"'),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_alike_with_the_api_servers_words(cluster: Cluster, crds_installed: Any, namespace: str,
                                                   name: str) -> None:
    text, words = REJECTED[name]
    code, _ = pxsec_validate(text)
    offline = offline_lines(text)
    result = kubectl_apply(cluster, namespace, text)
    assert code == 1 and result.returncode != 0, (offline, result.stderr)
    assert words in result.stderr and any(words in line for line in offline), (result.stderr, offline)
    assert disagreements(*server_problems(result.stderr), offline) == []


CLIENT_SIDE = {
    # name: (text, what kubectl says, what pxsec says): kubectl refuses before the API server sees it
    "labels-as-a-list": (doc("labels-list", "  selfSigned: {sharedSecret: {}}\n", ", labels: [a, b]"),
                         "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type "
                         "map[string]string", "json: cannot unmarshal array into Go struct field "
                         "ObjectMeta.metadata.labels of type map[string]string"),
    "annotation-a-number": (doc("annotation-number", "  selfSigned: {sharedSecret: {}}\n", ", annotations: {a: 1}"),
                            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.annotations of "
                            "type string", "cannot unmarshal number into Go struct field "
                            "ObjectMeta.metadata.annotations of type string"),
    "generate-name": (HEADER + "metadata: {generateName: px-}\nspec: {selfSigned: {sharedSecret: {}}}\n",
                      "cannot use generate name with apply", "kubectl apply cannot use metadata.generateName"),
    "alias-bomb": (doc("bomb", "  selfSigned: {sharedSecret: {}}\n  secretTemplate:\n"
                       + "".join(f"    {c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                                 for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True))),
                   "excessive aliasing", "document contains excessive aliasing"),
    "separator-with-content": ("--- " + doc("sep", "  selfSigned: {sharedSecret: {}}\n"),
                               "invalid Yaml document separator", "invalid Yaml document separator"),
    "infinity": (doc("inf", "  selfSigned: {sharedSecret: {}}\n  secretTemplate: {labels: {a: .inf}}\n"),
                 "unsupported value: +Inf", "json: unsupported value: +Inf"),
}


@pytest.mark.parametrize("name", sorted(CLIENT_SIDE))
def test_what_kubectl_refuses_pxsec_refuses(cluster: Cluster, crds_installed: Any, namespace: str, name: str) -> None:
    text, kubectl_words, pxsec_words = CLIENT_SIDE[name]
    code, lines = pxsec_validate(text)
    result = kubectl_apply(cluster, namespace, text)
    assert result.returncode != 0 and kubectl_words in result.stderr, result.stderr
    assert code in (1, 2) and any(pxsec_words in line for line in lines), lines


def test_deep_nesting_is_refused_by_both(cluster: Cluster, crds_installed: Any, namespace: str) -> None:
    """kubectl parses 500 levels and the API server refuses the shape; pxsec stops at 100 levels: the same
    verdict, in other words."""
    text = doc("deep", "  selfSigned: {sharedSecret: {}}\n  secretTemplate: " + "[" * 500 + "]" * 500 + "\n")
    code, lines = pxsec_validate(text)
    assert code == 2 and "nested more than 100 levels deep" in lines[0]
    assert kubectl_apply(cluster, namespace, text).returncode != 0


def test_a_key_written_twice_where_pxsec_is_stricter_than_kubectl_apply_f(cluster: Cluster, crds_installed: Any,
                                                                         namespace: str, tmp_path: Path) -> None:
    text = doc("twice", "  selfSigned: {sharedSecret: {}}\n  guestAccess: Enabled\n  guestAccess: Disabled\n")
    code, lines = pxsec_validate(text)
    assert code == 2 and 'mapping key "guestAccess" already defined at line 6' in lines[0]
    silently = kubectl_apply(cluster, namespace, text)  # go-yaml v2: the last one wins, no word said
    assert silently.returncode == 0 and json.loads(silently.stdout)["spec"]["guestAccess"] == "Disabled"
    (tmp_path / "cr.yaml").write_text(text)
    (tmp_path / "kustomization.yaml").write_text("resources: [cr.yaml]\n")
    kustomized = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-k", str(tmp_path), check=False)
    assert kustomized.returncode != 0 and 'mapping key "guestAccess" already defined at line 6' in kustomized.stderr
