"""`studio launch --auth`: guessing is slowed down per user name and per client, without a browser."""

from __future__ import annotations

import asyncio
import concurrent.futures

from studio import login
from studio.login import FIRST_LOCK_S, FREE_TRIES, MAX_LOCK_S, LoginThrottle, make_auth, passwords_match

PAIRS = [("alice", "secret-pass"), ("bob", "hunter2")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(auth, username: str, password: str, client: str = "10.0.0.1") -> bool:
    """One login from `client`, as Gradio's login route makes it (the middleware has set the address)."""
    async def go() -> bool:
        token = login._client.set(client)
        try:
            return await auth(username, password)
        finally:
            login._client.reset(token)

    return run_async(go())


def run_async(coroutine):
    """Run `coroutine` to its end in a thread of its own: a browser test earlier in the session (Playwright's sync
    API) may leave an event loop running in this one, where asyncio.run refuses to start another."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_passwords_match_exactly() -> None:
    assert passwords_match(PAIRS, "alice", "secret-pass") and passwords_match(PAIRS, "bob", "hunter2")
    assert not passwords_match(PAIRS, "alice", "hunter2")
    assert not passwords_match(PAIRS, "alice", "secret-pas") and not passwords_match(PAIRS, "carol", "x")
    assert not passwords_match(PAIRS, "alice", "")


def test_failures_lock_the_name_out_for_a_doubling_window() -> None:
    clock = Clock()
    auth = make_auth(PAIRS, LoginThrottle(clock))
    for _ in range(FREE_TRIES):
        assert not attempt(auth, "alice", "wrong")
    # Locked: even the right password is refused, unchecked, until the window has passed.
    assert not attempt(auth, "alice", "secret-pass")
    clock.now += FIRST_LOCK_S + 0.01
    assert not attempt(auth, "alice", "wrong again")  # checked, failed: the next window is twice as long
    clock.now += FIRST_LOCK_S + 0.01
    assert not attempt(auth, "alice", "secret-pass")
    clock.now += FIRST_LOCK_S
    assert attempt(auth, "alice", "secret-pass")
    # A success clears the count: the next mistake is free again.
    assert not attempt(auth, "alice", "wrong")
    assert attempt(auth, "alice", "secret-pass")


def test_one_client_guessing_many_names_is_locked_out_too() -> None:
    clock = Clock()
    auth = make_auth(PAIRS, LoginThrottle(clock))
    for index in range(FREE_TRIES):
        assert not attempt(auth, f"user{index}", "guess", client="10.6.6.6")
    assert not attempt(auth, "bob", "hunter2", client="10.6.6.6")
    assert attempt(auth, "bob", "hunter2", client="10.0.0.2")  # another client with the right password is fine


def test_the_lock_is_capped() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_TRIES + 30):
        throttle.record("alice", "c", success=False)
    assert 0 < throttle.wait_s("alice", "c") <= MAX_LOCK_S
    clock.now += MAX_LOCK_S
    assert throttle.wait_s("alice", "c") == 0


def test_launch_gives_gradio_the_throttled_check(monkeypatch) -> None:
    """The launch command passes a callable (Gradio then calls it per login) and the client-address middleware."""
    import gradio as gr

    from studio import launch

    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: seen.update(kwargs, cache=self.delete_cache))
    monkeypatch.setattr(launch.signal, "signal", lambda *args: None)
    monkeypatch.setattr(launch.atexit, "register", lambda *args: None)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("STUDIO_DEMO", raising=False)
    launch.main(["--auth", "alice:secret-pass", "--port", "7999"])
    assert callable(seen["auth"]) and run_async(seen["auth"]("alice", "secret-pass"))
    assert [m.cls for m in seen["app_kwargs"]["middleware"]] == [login.ClientAddress]
    assert seen["cache"] == launch.CACHE_CLEANUP
