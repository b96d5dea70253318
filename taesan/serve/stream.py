"""Generation as a stream: one daemon thread per request runs the model's generator and hands each piece to
the event loop; the route answers a status before the first piece and NDJSON lines after it.

Every way out is an answer: settings refused (400), a worker that fails before its first piece (500), no word
from the worker before the deadline (408), and after the stream began an {"error": ..., "done": true} line.
Not the decoding (taesan.serve.served / taesan.pipeline) and not the route's fields (requests.py).
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from taesan.errors import TaesanError
from taesan.serve.limits import Deadline, Slots
from taesan.serve.replies import HTTPError


class Generation:
    """One request's generation: the worker thread (holding a slot from start to end) and its messages.

    The worker sends ("ready" | "refused" | "failed", ...) first, then ("text", piece)... and one ("done", reason) or
    ("error", line). It checks `stop` between pieces (set when the stream ends or is dropped, e.g. the client left),
    and the stream's own deadline is passed to it, so no generation outlives both.
    """

    def __init__(self, slots: Slots, start: Callable[[], Iterator], deadline: Deadline) -> None:
        self.loop = asyncio.get_running_loop()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.stop = threading.Event()
        self.deadline = deadline
        self._slots, self._start = slots, start
        threading.Thread(target=self._run, name="taesan-generate", daemon=True).start()

    def _put(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.messages.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone: nobody is listening
            self.stop.set()

    def _run(self) -> None:
        try:
            last = self._generate()
        finally:
            self._slots.release()  # before the last message: once the client has its answer, the slot is free
        self._put(*last)

    def _generate(self) -> tuple[str, Any]:
        """Start the generator and relay its pieces; -> the last message: ("refused" | "failed" | "done" | "error", ...)."""
        try:
            pieces = self._start()  # the settings are checked here, before any piece
        except TaesanError as e:
            return "refused", str(e)
        except Exception as e:  # noqa: BLE001 - a bug: the request still gets one line (a 500), the log the traceback
            return "failed", e
        self._put("ready")
        try:
            return "done", self._relay(pieces)
        except TimeoutError:
            return "error", f"generation stopped after {self.deadline.seconds:g} s (timeout)"
        except TaesanError as e:
            return "error", str(e)
        except Exception as e:  # noqa: BLE001 - a bug: still one line to the page, the stream already said 200
            return "error", f"generation failed ({type(e).__name__})"
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _relay(self, pieces: Iterator[str]) -> str | None:
        """Send each piece; -> how the stream ended (pipeline.text.TextStream's finish_reason, set after the last)."""
        it = iter(pieces)
        while not self.stop.is_set():  # checked before each piece: a dropped client costs no further token
            text = next(it, None)
            if text is None:
                return getattr(pieces, "finish_reason", None)
            if text:
                self._put("text", text)
            if self.deadline.passed:
                raise TimeoutError("generation ran out of time")
        return None  # stopped from outside: nobody reads the reason

    async def first(self) -> None:
        """Wait for the worker's first word: return when it streams, raise the HTTPError it gives otherwise."""
        try:
            kind, value = await asyncio.wait_for(self.messages.get(), self.deadline.left())
        except BaseException as e:  # the deadline, or the client left: the worker stops at its next piece
            self.stop.set()
            if isinstance(e, asyncio.TimeoutError):
                raise HTTPError(408, f"generation did not start within {self.deadline.seconds:g} s") from None
            raise
        if kind == "refused":
            raise HTTPError(400, value)
        if kind == "failed":
            raise value

    async def lines(self) -> AsyncIterator[str]:
        """NDJSON: {"text": piece}... then {"done": true, "finish_reason": ...} or {"error": ..., "done": true}."""
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(self.messages.get(), self.deadline.left())
                except asyncio.TimeoutError:
                    kind, value = "error", f"generation stopped after {self.deadline.seconds:g} s (timeout)"
                if kind == "text":
                    yield json.dumps({"text": value}, ensure_ascii=False) + "\n"
                elif kind == "done":
                    yield json.dumps({"done": True, **({"finish_reason": value} if value else {})}) + "\n"
                    return
                else:
                    yield json.dumps({"error": value, "done": True}, ensure_ascii=False) + "\n"
                    return
        finally:  # the stream ended, the client went away or the response was dropped: the thread stops
            self.stop.set()
