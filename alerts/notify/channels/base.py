"""The contract every channel implements; only the retry stage (``notify.delivery``) retries."""

from __future__ import annotations

from abc import ABC, abstractmethod

from alerts.model import Notification


class Channel(ABC):
    """Delivers one notification to one destination.

    ``send`` returns on success and raises :class:`~alerts.errors.RecoverableDeliveryError` (retry,
    honouring ``retry_after``) or :class:`~alerts.errors.PermanentDeliveryError` (record, stop).
    Messages of those errors must never contain a secret (token, password, signing key, full URL).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def send(self, notification: Notification) -> None: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most channels hold nothing
        """Release connections; called once at shutdown."""
