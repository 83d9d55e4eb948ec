"""Per-user rate limit: at most `messages` in any `seconds` window (sliding), so one user cannot
monopolise the model that every channel shares."""

from __future__ import annotations

import time
from collections import defaultdict, deque

SLOW_DOWN = "Slow down! Even Lord Inosuke needs to breathe between fights! Try again in a bit!"


class RateLimiter:
    def __init__(self, messages: int = 6, seconds: float = 60.0, clock=time.monotonic):
        self.messages, self.seconds, self.clock = messages, seconds, clock
        self._recent: defaultdict[int, deque[float]] = defaultdict(deque)

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
