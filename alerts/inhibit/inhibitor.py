"""Inhibition rules: while a source alert fires, target alerts with the same ``equal`` labels are muted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from alerts.silence.matchers import MatcherList, matches_all


class InhibitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: MatcherList = Field(validation_alias=AliasChoices("source", "source_matchers"))
    target: MatcherList = Field(default_factory=list, validation_alias=AliasChoices("target", "target_matchers"))
    equal: list[str] = Field(default_factory=list)


class Inhibitor:
    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = rules

    def inhibits(self, target_labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
        """True when a firing alert matching a rule's source (and equal on ``equal``) mutes this one."""
        sources = list(firing)
        for rule in self.rules:
            if not matches_all(rule.target, target_labels):
                continue
            for source in sources:
                if dict(source) == dict(target_labels):
                    continue  # an alert never inhibits itself
                if matches_all(rule.source, source) and all(
                        source.get(label, "") == target_labels.get(label, "") for label in rule.equal):
                    return True
        return False
