"""The render dumper's fast representer and remembered resolver write the same bytes as PyYAML's own
SafeRepresenter and resolver with the same quoting rules: any data the renderers can produce, and strings
chosen to need quoting (numbers, booleans and nulls of YAML 1.1 and 1.2, indicators, line breaks)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pxsec import render


class Reference(render._Dumper):  # type: ignore[misc,name-defined]
    """The same dumper with PyYAML's general representer and resolver put back."""

    represent_data = yaml.representer.BaseRepresenter.represent_data
    resolve = yaml.resolver.BaseResolver.resolve


def reference_text(obj: Any) -> str:
    text: str = yaml.dump(obj, Dumper=Reference, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=2**31 - 1)
    return text


TRICKY = ["", "1e3", "2E-5", "0o17", "0b101", "1_000", "y", "n", "Y", "yes", "No", "on", "null", "~", "true",
          "False", ".inf", "-.inf", ".nan", "0x1F", "+1", "-", "- a", ": b", "a: b", "#c", "a #c", "'q'", '"d"',
          "line\nbreak", " lead", "trail ", "tab\there", "ü", "日本", "\u2028", "${pvc.namespace}", "{x}", "[y]",
          "*alias", "&anchor", "!tag", "%pct", "@at", "`tick", "|", ">", "?", ",", "2026-12-03", "12:30"]

scalars = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), st.integers(), st.booleans(), st.none())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(TRICKY), st.text(max_size=8)), inner,
                                            max_size=4)),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_the_fast_dumper_writes_what_pyyaml_writes(doc: Any) -> None:
    assert render.to_text(doc) == reference_text(doc)


def test_every_target_renders_as_pyyaml_renders_it() -> None:
    from pxsec.spec import parse_spec

    spec = parse_spec({
        "storageCluster": {"name": "1e3"}, "oidc": {"issuer": "https://y/", "clientID": "null",
                                                   "customClaimNamespace": "- a"},
        "selfSigned": {"issuer": "0o17", "sharedSecret": {"secretName": "s"}, "ecdsa": {"secretName": "e"}},
        "tokens": [{"secretName": "t", "subject": "a", "roles": ["system.user"]}]})
    for target in render.TARGETS:
        obj = render.render(spec, "n", target, cr_name="px")
        assert render.to_text(obj) == reference_text(obj), target


def test_rendered_text_is_remembered_and_the_same_as_written_afresh() -> None:
    """Targets that do not name the namespace give the same document for every namespace: written once."""
    from pxsec.spec import parse_spec

    spec = parse_spec({"storageCluster": {"name": "px-cluster"},
                       "selfSigned": {"issuer": "pxsec.example", "sharedSecret": {}, "ecdsa": {"secretName": "e"}}})
    a = render.render_text(spec, "ns-a", "daemonset", cr_name="px")
    b = render.render_text(spec, "ns-b", "daemonset", cr_name="px")
    assert a is b  # remembered
    assert a == render.to_text(render.render(spec, "ns-b", "daemonset", cr_name="px"))
    sc_a = render.render_text(spec, "ns-a", "storagecluster", cr_name="px")
    sc_b = render.render_text(spec, "ns-b", "storagecluster", cr_name="px")
    assert sc_a != sc_b and "ns-b" in sc_b  # this one names its namespace: its own text


NAMESPACES = ["ns-a", "kube-system", "true", "123", "null", "off", "y", "0x1f", "1e3", "1-2", "0o17", "a" * 63,
              render._NS_MARK]


@given(st.sampled_from(NAMESPACES) | st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
       st.sampled_from(["px", "px-cluster", render._NS_MARK, f"x{render._NS_MARK}"]))
@settings(max_examples=150)
def test_a_namespace_put_in_its_places_is_the_text_written_afresh(namespace: str, name: str) -> None:
    """The text rendered for a stand-in namespace, with the namespace put in its places, is byte for byte
    what the target rendered for that namespace writes — also for namespaces YAML must quote, and for a
    spec that contains the stand-in itself (then the text is written afresh)."""
    from pxsec.spec import parse_spec

    spec = parse_spec({"storageCluster": {"name": name}, "selfSigned": {
        "issuer": "pxsec.example", "sharedSecret": {"secretName": name}, "ecdsa": {"secretName": "e"}},
        "tokens": [{"secretName": "t", "roles": ["system.admin"]}]})
    for target in render.TARGETS:
        assert render.render_text(spec, namespace, target, cr_name="px") == \
            reference_text(render.render(spec, namespace, target, cr_name="px")), (target, namespace)


def test_a_namespace_is_put_in_its_places_only_when_written_as_itself() -> None:
    from pxsec.spec import parse_spec

    spec = parse_spec({"storageCluster": {"name": "px-cluster"}, "selfSigned": {"sharedSecret": {}}})
    text = render.render_text(spec, "123", "storagecluster", cr_name="px")
    assert "namespace: '123'" in text and render._NS_MARK not in text
    assert render._mark_slots({"a": [render._NS_MARK, {"b": render._NS_MARK}]}) == 2
    assert render._mark_slots({"a": f"{render._NS_MARK}.svc"}) == -1
    assert render._mark_slots({render._NS_MARK: "x"}) == -1
