"""`studio launch --auth`: password checks that slow down guessing.

After a few failures for one user name, or from one client address, further attempts are refused without being
checked for a lock-out window that doubles with every failure (up to `MAX_LOCK_S`); a success clears both. The
comparison takes the same time whether or not the name exists or the password shares a prefix.
"""

from __future__ import annotations

import contextvars
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

FREE_TRIES = 3  # failures allowed before the first lock-out
FIRST_LOCK_S = 2.0
MAX_LOCK_S = 300.0
MAX_TRACKED = 10_000  # failure records kept; the oldest are forgotten first

# The address of the client whose login request is being handled, set by `ClientAddress` (Gradio passes the
# auth function only the name and the password).
_client: contextvars.ContextVar[str] = contextvars.ContextVar("studio_login_client", default="unknown")


class LoginThrottle:
    """Failure counts per user name and per client address, and whether an attempt may be checked now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # key -> (count, time of last failure)
        self._lock = threading.Lock()

    def _keys(self, username: str, client: str) -> list[tuple[str, str]]:
        return [("user", username), ("client", client)]

    def wait_s(self, username: str, client: str) -> float:
        """Seconds until an attempt for `username` from `client` may be checked (0: now)."""
        now = self._clock()
        with self._lock:
            waits = []
            for key in self._keys(username, client):
                count, last = self._failures.get(key, (0, 0.0))
                if count >= FREE_TRIES:
                    lock = min(FIRST_LOCK_S * 2 ** (count - FREE_TRIES), MAX_LOCK_S)
                    waits.append(last + lock - now)
            return max([0.0, *waits])

    def record(self, username: str, client: str, success: bool) -> None:
        """Count a failure against the name and the client, or clear both after a success."""
        now = self._clock()
        with self._lock:
            for key in self._keys(username, client):
                if success:
                    self._failures.pop(key, None)
                else:
                    count, _ = self._failures.get(key, (0, 0.0))
                    self._failures[key] = (count + 1, now)
            if len(self._failures) > MAX_TRACKED:
                oldest = sorted(self._failures, key=lambda k: self._failures[k][1])[:len(self._failures) // 2]
                for key in oldest:
                    del self._failures[key]


def passwords_match(pairs: list[tuple[str, str]], username: str, password: str) -> bool:
    """Whether `username:password` is one of `pairs`, compared in constant time over every pair."""
    given_user, given_password = username.encode(), password.encode()
    found = False
    for user, secret in pairs:
        same_user = hmac.compare_digest(given_user, user.encode())
        same_password = hmac.compare_digest(given_password, secret.encode())
        found |= same_user and same_password
    return found


def make_auth(pairs: list[tuple[str, str]], throttle: LoginThrottle | None = None,
              ) -> Callable[[str, str], Awaitable[bool]]:
    """The function given to `launch(auth=...)`: a throttled check of the name and password."""
    throttle = throttle or LoginThrottle()

    async def check(username: str, password: str) -> bool:
        """Gradio's login form → whether to let the user in (refused unchecked while locked out)."""
        client = _client.get()
        if throttle.wait_s(username, client) > 0:
            return False  # not even checked: a right guess inside the window teaches nothing
        ok = passwords_match(pairs, username or "", password or "")
        throttle.record(username, client, success=ok)
        return ok

    return check


class ClientAddress:
    """ASGI middleware that makes the client's address known to the auth function for the request it handles."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        client = scope.get("client")
        token = _client.set(str(client[0]) if client else "unknown")
        try:
            await self.app(scope, receive, send)
        finally:
            _client.reset(token)
