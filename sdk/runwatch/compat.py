"""The rest of wandb's public names, so a script written for W&B never dies on an ``AttributeError``.

Names Runwatch has no counterpart for (sweeps, video, audio, 3-D objects, ...) warn once, naming the
call, and do nothing: a media object of such a class is logged as a short note, never as data. Names
with a trivial meaning here (``setup``, ``require``, ``termlog``, ``teardown``) just do it.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import Any

from ._log import is_silent, log_once
from .errors import Error
from .media import Table

__all__ = [
    "Audio", "ArtifactTTL", "Classes", "CommError", "EvalTable", "Graph", "Html", "JoinedTable", "Molecule",
    "Object3D", "Plotly", "Video", "agent", "attach", "box3d", "controller", "require", "setup", "sweep",
    "termerror", "termlog", "termwarn", "unsupported",
]


def _warn(name: str) -> None:
    log_once(f"unsupported-{name}", "runwatch: wandb.%s is not supported by Runwatch; the call does nothing", name)


def unsupported(name: str, result: Any = None) -> Callable[..., Any]:
    """A function standing in for ``wandb.<name>``: warns once, does nothing, returns ``result``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        _warn(name)
        return result

    call.__name__ = name.rsplit(".", 1)[-1]
    call.__qualname__ = call.__name__
    call.__doc__ = f"``wandb.{name}``: not supported by Runwatch; warns once and does nothing."
    return call


class _Unsupported:
    """A W&B media type Runwatch does not store: constructing it warns once; logging it stores a note."""

    _wandb_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _warn(self._wandb_name)

    def __str__(self) -> str:
        return f"<wandb.{self._wandb_name}: not supported by Runwatch>"

    __repr__ = __str__


def _media(name: str) -> type[_Unsupported]:
    return type(name, (_Unsupported,), {"_wandb_name": name, "__doc__": f"``wandb.{name}``: not stored."})


Video = _media("Video")
Audio = _media("Audio")
Html = _media("Html")
Plotly = _media("Plotly")
Object3D = _media("Object3D")
Molecule = _media("Molecule")
Graph = _media("Graph")
Classes = _media("Classes")
JoinedTable = _media("JoinedTable")


class EvalTable(Table):
    """``wandb.EvalTable``: a ``Table``; W&B's evaluation-specific options are accepted and ignored."""

    def __init__(self, columns: Any = None, data: Any = None, rows: Any = None, dataframe: Any = None,
                 **options: Any) -> None:
        super().__init__(columns=columns, data=data if data is not None else rows, dataframe=dataframe)


class ArtifactTTL(enum.Enum):
    """``wandb.ArtifactTTL``: artifacts here live as long as the service keeps them."""

    INHERIT = 0


class CommError(Error):
    """``wandb.CommError``: a communication error with the service (for ``except`` clauses)."""


sweep = unsupported("sweep")
controller = unsupported("controller")
agent = unsupported("agent")
attach = unsupported("attach")
box3d = unsupported("box3d")


def setup(settings: Any = None) -> None:
    """``wandb.setup``: nothing to set up (there is no background service process); accepted as is."""


def require(requirement: Any = None, experiment: Any = None) -> None:
    """``wandb.require``: W&B's feature flags; nothing to require here."""


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """``wandb.termlog``: print a line prefixed ``runwatch:`` to stderr (nothing when silent)."""
    if not is_silent():
        print(("runwatch: " if prefix else "") + str(string), end="\n" if newline else "", file=sys.stderr)


def termwarn(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    termlog(("WARNING " if prefix else "") + str(string), newline=newline, prefix=prefix)


def termerror(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    termlog(("ERROR " if prefix else "") + str(string), newline=newline, prefix=prefix)
