"""Storm control: one token bucket per channel. A notification without a token waits in the outbox for
the next one (it is not dropped, and waiting does not count as a failed attempt)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    capacity: float
    refill_per_second: float
    tokens: float
    updated: float

    @classmethod
    def create(cls, rate: int, per: float, burst: int | None, now: float) -> TokenBucket:
        capacity = float(burst or rate)
        return cls(capacity=capacity, refill_per_second=rate / per, tokens=capacity, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_second)
            self.updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def available(self, now: float) -> int:
        """Whole tokens in the bucket now."""
        self._refill(now)
        return int(self.tokens)

    def next_token_at(self, now: float) -> float:
        self._refill(now)
        return now + max(0.0, 1.0 - self.tokens) / self.refill_per_second
