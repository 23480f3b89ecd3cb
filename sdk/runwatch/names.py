"""Readable run names (``brisk-otter-7``) and short unique run ids.

Both take an optional ``random.Random`` so tests can make them deterministic.
"""

from __future__ import annotations

import random
import secrets

__all__ = ["generate_id", "generate_name"]

_ADJECTIVES = (
    "brisk", "calm", "clever", "cosmic", "crisp", "daring", "eager", "fancy", "gentle", "glad",
    "golden", "happy", "jolly", "keen", "lively", "lucky", "misty", "noble", "polar", "proud",
    "quiet", "rapid", "royal", "rustic", "silent", "snowy", "solar", "spry", "stellar", "sunny",
    "swift", "tidy", "vivid", "warm", "wild", "witty", "young", "zesty", "amber", "bold",
)
_NOUNS = (
    "otter", "falcon", "river", "meadow", "comet", "forest", "harbor", "lake", "pine", "planet",
    "raven", "ridge", "sky", "star", "stream", "sun", "thunder", "valley", "wave", "wind",
    "badger", "cedar", "dune", "ember", "fjord", "glade", "heron", "island", "lynx", "moon",
    "nebula", "oak", "pebble", "quartz", "reef", "sparrow", "tiger", "violet", "willow", "yak",
)
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def generate_name(rng: random.Random | None = None) -> str:
    """Return a name like ``brisk-otter-7``; not unique, the id is what identifies a run."""
    r = rng or random.SystemRandom()
    return f"{r.choice(_ADJECTIVES)}-{r.choice(_NOUNS)}-{r.randint(1, 99)}"


def generate_id(rng: random.Random | None = None, length: int = 8) -> str:
    """Return a short lowercase base-36 id (8 chars: ~41 bits, enough for one service)."""
    if rng is None:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
    return "".join(rng.choice(_ID_ALPHABET) for _ in range(length))
