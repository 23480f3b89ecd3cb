"""Readable default run names (``brisk-otter-7``), derived from the run id so retries agree."""

from __future__ import annotations

import hashlib

_ADJECTIVES = ["amber", "bold", "brisk", "calm", "clever", "crisp", "dusty", "eager", "fancy", "gentle",
               "glad", "golden", "hardy", "jolly", "keen", "lively", "lucky", "merry", "misty", "noble",
               "proud", "quiet", "rapid", "royal", "rustic", "silent", "sleek", "snowy", "solar", "steady",
               "sunny", "swift", "tidy", "vivid", "warm", "wild", "wise", "young", "zesty", "brave"]
_NOUNS = ["otter", "falcon", "river", "meadow", "comet", "forest", "harbor", "lantern", "maple", "nebula",
          "orchid", "pebble", "quasar", "raven", "sparrow", "tiger", "valley", "willow", "zephyr", "badger",
          "cedar", "dune", "ember", "fjord", "glacier", "heron", "iris", "jaguar", "koala", "lynx",
          "moon", "newt", "ocean", "panda", "quail", "reef", "sun", "tundra", "wave", "yak"]


def readable_name(run_id: str) -> str:
    digest = hashlib.sha256(run_id.encode()).digest()
    return f"{_ADJECTIVES[digest[0] % len(_ADJECTIVES)]}-{_NOUNS[digest[1] % len(_NOUNS)]}-{digest[2] % 100}"
