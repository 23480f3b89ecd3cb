"""Inhibition rules: while a source alert fires, target alerts with the same ``equal`` labels are muted.

Semantics of Alertmanager's ``inhibit_rules``:

- ``target`` selects the alerts that may be muted; an empty ``target`` (``{}`` or ``[]``) selects every
  alert. ``source`` selects the firing alerts that mute them.
- Every label in ``equal`` must have the same value on source and target; a label missing on both sides
  counts as equal (both are ``""``).
- An alert never inhibits itself (a source with exactly the target's labels is skipped), and when the
  target itself matches ``source``, sources that also match ``target`` are skipped. Without the second
  rule, two alerts matching both sides (SPEC §4.2's ``{source: {rule: run-crashed}, target: {}}`` with
  two crash alerts of one run) would mute each other and neither would be sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.silence.matchers import LABEL_NAME, MatcherList, matches_all

__all__ = ["InhibitRule", "Inhibitor"]


class InhibitRule(BaseModel):
    """One ``inhibit`` entry: ``{source: ..., target: ..., equal: [...]}``.

    ``source``/``target`` take a ``{label: value}`` mapping or a list of matcher strings
    (:data:`~alerts.silence.matchers.MatcherList`); Alertmanager's names ``source_matchers`` and
    ``target_matchers`` are accepted too.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", populate_by_name=True)

    source: MatcherList = Field(validation_alias=AliasChoices("source", "source_matchers"))
    """Matchers of the alerts that inhibit while they fire."""
    target: MatcherList = Field(default_factory=list, validation_alias=AliasChoices("target", "target_matchers"))
    """Matchers of the alerts they mute."""
    equal: list[str] = Field(default_factory=list)
    """Labels whose values source and target must share (e.g. `[run]`)."""

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        # With AliasChoices pydantic silently takes the first spelling present; giving both is a mistake.
        if isinstance(data, Mapping):
            for short, long in (("source", "source_matchers"), ("target", "target_matchers")):
                if short in data and long in data:
                    raise ValueError(f"give either {short} or {long}, not both")
        return data

    @field_validator("equal")
    @classmethod
    def _label_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if LABEL_NAME.fullmatch(name) is None:
                raise ValueError(f"invalid label name {name!r} in equal: expected [a-zA-Z_][a-zA-Z0-9_]*")
        return value


class Inhibitor:
    """Evaluates inhibition rules against the alerts firing right now."""

    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = rules

    def inhibits(self, target_labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
        """Whether a firing alert mutes the alert with ``target_labels`` under some rule.

        ``firing`` may include the target alert itself; it is skipped (see the module docstring).
        """
        return next(self._inhibiting(target_labels, firing), None) is not None

    def inhibiting(self, target_labels: Mapping[str, str],
                   firing: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
        """The label sets of ``firing`` (the objects given) that mute the alert with ``target_labels``:
        Alertmanager's ``inhibitedBy``."""
        once = {id(source): source for source in self._inhibiting(target_labels, firing)}  # a source of two rules
        return list(once.values())

    def _inhibiting(self, target_labels: Mapping[str, str],
                    firing: Iterable[Mapping[str, str]]) -> Iterator[Mapping[str, str]]:
        rules = [rule for rule in self.rules if matches_all(rule.target, target_labels)]
        if not rules:
            return
        target = dict(target_labels)
        sources = [(given, dict(given)) for given in firing]
        for rule in rules:
            target_is_source = matches_all(rule.source, target)
            for given, source in sources:
                if source == target:
                    continue
                if not matches_all(rule.source, source):
                    continue
                if target_is_source and matches_all(rule.target, source):
                    continue
                if all(source.get(label, "") == target.get(label, "") for label in rule.equal):
                    yield given
