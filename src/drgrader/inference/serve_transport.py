"""Slow, stalled and oversized clients of ``drgrader serve``, at the transport level.

:func:`guarded_receive` wraps an ASGI ``receive``: it stops reading a request body past its size
limit (so a huge or chunked upload is refused before it is spooled to disk) and gives up on a
client that goes silent or sends too slowly. :func:`http_protocol` is uvicorn's h11 protocol with
a timeout on the request head, which uvicorn alone does not have.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("drgrader")

DEFAULT_READ_TIMEOUT = 30.0  # seconds of silence from a client mid-request before giving up on it
UPLOAD_TIME_FACTOR = 10  # a whole upload may take at most this many read timeouts (slowloris bound)
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open (uvicorn's default)
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file


class BodyTooLarge(Exception):
    pass


class BodyStalled(Exception):
    """The client sent nothing for the read timeout, or is still sending at the deadline."""


def guarded_receive(receive, limit: int, idle: float, total: float):
    """An ASGI receive that stops reading the request body after ``limit`` bytes, so a huge or
    chunked upload is refused without being spooled to disk first, and gives up on a client
    that sends nothing for ``idle`` seconds or is still sending after ``total`` seconds."""
    seen = 0
    deadline = asyncio.get_running_loop().time() + total

    async def wrapped():
        nonlocal seen
        left = deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(receive(), timeout=max(min(idle, left), 0))
        except asyncio.TimeoutError:
            why = f"nothing received for {idle:g} s" if idle < left else f"the upload took more than {total:g} s"
            raise BodyStalled(why) from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge()
        return message

    return wrapped


def http_protocol(read_timeout: float):
    """uvicorn's h11 protocol with a request-head timeout: a connection that has not sent a
    complete request head within ``read_timeout`` of opening (or of its last answer) is closed.
    uvicorn alone keeps a connection that sends nothing, or a few bytes now and then, forever."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer = None

        def _arm(self) -> None:
            if self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(read_timeout, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("client %s sent no complete request within %g s: connection closed",
                         self.client[0] if self.client else "?", read_timeout)
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._arm()
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE:
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeadTimeoutProtocol
