"""The echo of our own write is recognised once, by its resourceVersion; anything else still wakes."""

from __future__ import annotations

from pxsec.controller.echoes import Echoes


def test_an_echo_is_recognised_once_and_only_with_our_resource_version() -> None:
    echoes = Echoes()
    echoes.wrote("Secret", "ns", "a", "101")
    assert not echoes.is_echo("Secret", "ns", "a", "100")  # an older event: not ours
    assert not echoes.is_echo("Secret", "ns", "b", "101")  # another object
    assert echoes.is_echo("Secret", "ns", "a", "101")
    assert not echoes.is_echo("Secret", "ns", "a", "101")  # once
    echoes.wrote("Secret", "ns", "a", "102")
    echoes.wrote("Secret", "ns", "a", "103")  # our later write replaces the earlier one
    assert not echoes.is_echo("Secret", "ns", "a", "102")
    assert echoes.is_echo("Secret", "ns", "a", "103")
    echoes.wrote("Secret", "ns", "a", "")  # no resourceVersion: nothing to recognise
    assert not echoes.is_echo("Secret", "ns", "a", "")


def test_memory_is_bounded() -> None:
    echoes = Echoes(limit=3)
    for i in range(5):
        echoes.wrote("Secret", "ns", f"s{i}", str(i))
    assert not echoes.is_echo("Secret", "ns", "s0", "0") and echoes.is_echo("Secret", "ns", "s4", "4")
