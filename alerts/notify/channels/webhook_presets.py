"""The webhook presets: each provider's request as a built-in template (``presets/<name>.json.j2``).

A preset is what a user could write as ``template:``, plus where the provider needs more than a body:
a default address, a path that depends on the notification (Opsgenie closes by alias), headers made
from the channel's options (Opsgenie's ``GenieKey``). The channel renders all of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from alerts.notify.channels.webhook_template import WebhookTemplate, check_template

_FOLDER = Path(__file__).resolve().parent / "presets"

OPTION_KEYS = ("chat_id", "parse_mode", "routing_key", "api_key")
"""Webhook config keys that only presets use; each preset names the ones it takes."""
OPTION_DEFAULTS: dict[str, object] = {"parse_mode": "HTML"}
"""What a preset's template sees for an optional key the config leaves out."""


@dataclass(frozen=True)
class Preset:
    name: str
    url: str | None = None
    """The default address; None: the config must give ``url``."""
    path: str = ""
    """Jinja text appended to the address, rendered with the body's context."""
    headers: dict[str, str] = field(default_factory=dict)
    """Jinja text per header, rendered once with the preset's options (secrets revealed)."""
    required: tuple[str, ...] = ()
    """Option keys the config must give."""
    optional: tuple[str, ...] = ()
    """Option keys the config may give."""
    url_path_suffix: str = ""
    """What the path of a configured ``url`` must end with (a check of the config, for a clear error)."""
    incidents: bool = False
    """The provider keeps one incident per ``dedup_key``: a retried trigger that lands after the group's
    resolve would reopen it, so an attempt older than what was already delivered for its group is dropped."""

    @property
    def options(self) -> tuple[str, ...]:
        return self.required + self.optional

    @cached_property
    def source(self) -> str:
        return (_FOLDER / f"{self.name}.json.j2").read_text(encoding="utf-8")

    @cached_property
    def body(self) -> WebhookTemplate:
        return WebhookTemplate(self.source)


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset("discord"),
    Preset("teams"),
    Preset("telegram", required=("chat_id",), optional=("parse_mode",), url_path_suffix="/sendMessage"),
    Preset("pagerduty", url="https://events.pagerduty.com/v2/enqueue", required=("routing_key",), incidents=True),
    Preset("opsgenie", url="https://api.opsgenie.com/v2/alerts", required=("api_key",), incidents=True,
           path='{% if status == "resolved" %}/{{ dedup_key | urlencode }}/close?identifierType=alias{% endif %}',
           headers={"Authorization": "GenieKey {{ api_key }}"}),
)}


def sample_options(preset: Preset) -> dict[str, object]:
    """Option values to check a preset's template with."""
    values: dict[str, object] = {"chat_id": -1001234567890, "parse_mode": "HTML", "routing_key": "0" * 32,
                                 "api_key": "00000000-0000-0000-0000-000000000000"}
    return {key: values[key] for key in preset.options}


def check_presets() -> None:
    """Render every preset against the sample notifications (the test suite calls this)."""
    for preset in PRESETS.values():
        check_template(preset.source, sample_options(preset))
