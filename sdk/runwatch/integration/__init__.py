"""Framework integrations, each behind its own optional extra (SPEC 8), each a stand-in for the W&B one::

    from runwatch.integration.lightning import RunwatchLogger            # pip install "runwatch[lightning]"
    from runwatch.integration.transformers import RunwatchCallback       # pip install "runwatch[transformers]"
    from runwatch.integration.keras import RunwatchMetricsLogger         # pip install "runwatch[keras]"

They replace Lightning's ``WandbLogger``, Transformers' ``WandbCallback`` and W&B's ``WandbMetricsLogger``
and log the same keys. This package imports no framework (nor does ``import runwatch``); a submodule imports
its framework when it is imported, and raises an ``ImportError`` naming the extra when the framework is
missing.
"""

from __future__ import annotations

__all__: list[str] = []
