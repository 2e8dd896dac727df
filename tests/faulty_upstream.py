"""A raw TCP HTTP/1.1 server that misbehaves on purpose: the fault-injection upstream.

Each connection reads one request, records it, and plays the next scripted `Fault` (the last
one repeats). It speaks just enough HTTP to do what a well-behaved framework never would:
drop the connection, declare a Content-Length and send less, stall forever.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Fault:
    """What to do with one request."""

    status: int = 200
    body: bytes = b"[]"
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    delay: float = 0.0
    """Seconds to wait before answering."""
    drop: bool = False
    """Close the connection without any answer."""
    declared_length: int | None = None
    """Content-Length to announce (more than the body: a cut-short answer)."""


@dataclass
class FaultyUpstream:
    """Serve scripted faults on 127.0.0.1; `requests` holds each request's raw head."""

    script: list[Fault] = field(default_factory=lambda: [Fault()])
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._played = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _next_fault(self) -> Fault:
        fault = self.script[min(self._played, len(self.script) - 1)]
        self._played += 1
        return fault

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            fault = self._next_fault()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if not fault.drop:
                length = (
                    fault.declared_length if fault.declared_length is not None else len(fault.body)
                )
                lines = [
                    f"HTTP/1.1 {fault.status} Whatever",
                    f"content-length: {length}",
                    "connection: close",
                ]
                lines += [f"{name}: {value}" for name, value in fault.headers]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + fault.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> FaultyUpstream:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(5)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        """Stop listening and end the connections still being served (a stall, say)."""
        assert self._server is not None
        self._server.close()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.requests)
