"""Per-user rate limit: at most `messages` in any `seconds` window (sliding), so one user cannot
monopolise the model that every channel shares. The first refused message of a window is
answered ("slow down"); the rest are ignored, so a flood gets one answer, not one each."""

from __future__ import annotations

import time
from collections import defaultdict, deque

SLOW_DOWN = "Slow down! Even Lord Inosuke needs to breathe between fights! Try again in a bit!"


class RateLimiter:
    def __init__(self, messages: int = 6, seconds: float = 60.0, clock=time.monotonic):
        self.messages, self.seconds, self.clock = messages, seconds, clock
        self._recent: defaultdict[int, deque[float]] = defaultdict(deque)
        self._warned_until: dict[int, float] = {}  # no second "slow down" before this time

    def allow(self, user_id: int) -> bool:
        """Count this message if the user is under the limit; False (and not counted) if not."""
        now = self.clock()
        recent = self._recent[user_id]
        while recent and now - recent[0] >= self.seconds:
            recent.popleft()
        if len(recent) >= self.messages:
            return False
        recent.append(now)
        return True

    def check(self, user_id: int) -> str:
        """Returns "allow" (counted), "warn" (refused: answer once) or "silent" (refused: already told)."""
        if self.allow(user_id):
            return "allow"
        now = self.clock()
        if now < self._warned_until.get(user_id, float("-inf")):
            return "silent"
        self._warned_until[user_id] = self._recent[user_id][0] + self.seconds  # when a message is allowed again
        return "warn"
