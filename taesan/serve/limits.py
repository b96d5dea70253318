"""How much the server does at once and for how long: model slots with a short queue, work in daemon threads,
a request body read against a size cap and a clock, and a deadline over every request from end to end.

Not what a request may say (requests.py) nor who may ask (guard.py). Nothing here knows a model or a route.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from taesan.errors import TaesanError
from taesan.serve.replies import HTTPError, send_error


class Slots:
    """At most `limit` model computations at once; at most `queue` more requests wait (first come, first served);
    a request beyond that is refused at once with a 503 "server busy, try again".

    A slot is held by the worker thread until the computation really returns. Python cannot stop a thread, so a
    request that timed out (408) keeps its slot until its thread ends: the cap counts running threads, not open
    requests. Not tied to one event loop: release() may be called from any thread.
    """

    def __init__(self, limit: int, queue: int) -> None:
        if limit < 1 or queue < 0:
            raise TaesanError(f"max_concurrent {limit} / max_queue {queue}: need at least 1 slot and a queue of 0 or more")
        self.limit, self.queue = limit, queue
        self.running = 0
        self._waiting: deque = deque()  # (loop, future) of each request waiting for a slot, oldest first
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        with self._lock:
            return len(self._waiting)

    async def acquire(self) -> None:
        with self._lock:
            if self.running < self.limit and not self._waiting:
                self.running += 1
                return
            if len(self._waiting) >= self.queue:
                raise HTTPError(503, "server busy, try again")
            loop = asyncio.get_running_loop()
            waiter = (loop, loop.create_future())
            self._waiting.append(waiter)
        try:
            await waiter[1]  # release() hands its slot over: `running` stays the same
        except BaseException:  # cancelled (timeout, client gone) while waiting, or just as the slot came
            with self._lock:
                handed = waiter not in self._waiting
                if not handed:
                    self._waiting.remove(waiter)
            if handed:
                self.release()
            raise

    def release(self) -> None:
        """Give the slot to the oldest waiting request, or free it."""
        with self._lock:
            while self._waiting:
                loop, future = self._waiting.popleft()
                try:
                    loop.call_soon_threadsafe(_settle, future, None, None)
                    return
                except RuntimeError:  # that request's event loop is closed: try the next one
                    continue
            self.running -= 1


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request gave up (timeout, client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def in_thread(slots: Slots, fn: Callable, *args: Any) -> asyncio.Future:
    """Run fn(*args) in a daemon thread that holds a slot (already acquired) until fn returns; -> a future of its
    result or its exception. Daemon, so a computation that never returns cannot keep the process from exiting."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the request, which answers for it
            result, error = None, e
        finally:
            slots.release()
        try:
            loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the event loop is gone (shutdown): nobody is waiting
            pass

    threading.Thread(target=run, name="taesan-compute", daemon=True).start()
    return future


async def compute(slots: Slots, timeout: float, fn: Callable, *args: Any) -> Any:
    """Model work in a worker thread holding a slot: a 503 when all slots and the queue are taken, a 408 when
    waiting plus computing takes longer than `timeout` (the thread then finishes and frees its slot)."""
    async def in_slot():
        await slots.acquire()
        return await in_thread(slots, fn, *args)  # the thread starts in this same step: no gap to leak the slot

    try:
        return await asyncio.wait_for(in_slot(), timeout)
    except asyncio.TimeoutError:
        raise HTTPError(408, f"the request took longer than {timeout:g} s; try a shorter text") from None


class Deadline:
    """A point in time (time.monotonic()) a request must be done by."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.end = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.end


class ClientGone(Exception):
    """The client closed the connection before its body arrived: nobody to answer, nothing to log."""


async def read_body(receive, max_body: int, timeout: float) -> bytes:
    """The whole request body from ASGI `receive`: a 413 past `max_body` bytes, a 408 when it has not all
    arrived within `timeout` seconds (a partial body is not held forever), ClientGone on a disconnect."""
    async def whole() -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                raise HTTPError(413, f"request body is over the limit of {max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    try:
        return await asyncio.wait_for(whole(), timeout)
    except asyncio.TimeoutError:
        raise HTTPError(408, f"the request body did not arrive within {timeout:g} s") from None


class EndToEnd:
    """ASGI middleware: no request lives longer than `seconds`, whatever happens inside. Past it, a request that
    has not answered gets a 408; one whose answer is streaming is ended. A backstop: the routes' own limits
    (body read, slot wait, computation, stream) answer first and say more."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = finished = False

        async def tracked(message) -> None:
            nonlocal started, finished
            started = True
            finished = message["type"] == "http.response.body" and not message.get("more_body", False)
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.seconds)
        except asyncio.TimeoutError:
            if not started:
                await send_error(send, 408, f"the request took longer than {self.seconds:g} s")
            elif not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
