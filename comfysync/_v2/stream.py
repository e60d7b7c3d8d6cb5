"""Live events of v2 jobs: one server-sent-event stream per job, one delivery thread.

A v2 deployment streams each job's events on its own URL (``GET /api/v2/jobs/{id}/events``),
so :class:`V2EventSource` opens a :class:`JobStream` (a reader thread) per job it is asked to
:meth:`~V2EventSource.watch`. Readers only decode; every event goes through one queue to one
delivery thread, which hands it to the client's sink — so callbacks run on one thread, in
arrival order, as on the native surface.

The streams never decide how a job ended (the job resource does): a stream that drops is
reconnected with backoff (each ``progress`` frame is a full snapshot, so nothing needs
replaying); a deployment that refuses another stream (``429``, its limit of concurrent
streams) leaves the job to polling; a frame that says the job ended is passed on as a *hint*
(``on_hint(job_id)``) so that the job resource can be read at once.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from typing import Callable, Dict, List, Optional, Union

import requests

from .. import events as ev
from .._backoff import Backoff
from ..errors import ComfyConnectionError, ComfyError, ComfyHTTPError
from .sse import EventMapper, SseDecoder
from .wire import V2Wire

__all__ = ["JobStream", "V2EventSource", "READ_IDLE", "abort"]

log = logging.getLogger("comfysync.v2")

#: Seconds of silence after which a stream counts as dead (deployments send a heartbeat
#: comment every 15 s).
READ_IDLE = 45.0
#: Reconnect delays (full jitter, see :class:`~comfysync._backoff.Backoff`).
_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 5.0
_JOIN_TIMEOUT = 5.0

Sink = Callable[[ev.Event], None]
_Stop = object()


def abort(response: requests.Response) -> None:
    """Close a streamed response another thread may be blocked reading: shut its socket down
    first (the read then returns at once), since closing the buffered reader alone would wait
    for that read — until the deployment's next heartbeat."""
    for path in (("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        target: object = response.raw
        for name in path:
            target = getattr(target, name, None)
        if isinstance(target, socket.socket):
            try:
                target.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            break
    response.close()


class JobStream:
    """Reads one job's event stream on its own thread until the job ends, the deployment
    refuses streams, or :meth:`stop`. ``deliver`` receives each event (from this thread);
    ``hint(job_id)`` as soon as a frame says the job ended (the outputs follow it, read until
    the deployment closes the stream); ``on_end(job_id, reason)`` once when the thread ends by
    itself, with ``"terminal"``, ``"limit"`` (429), ``"gone"`` (404/501: no stream for this
    job) or ``"error"``."""

    def __init__(
        self,
        wire: V2Wire,
        job_id: str,
        deliver: Sink,
        on_end: Callable[[str, str], None],
        *,
        hint: Callable[[str], None],
        name: str,
        read_idle: float = READ_IDLE,
    ) -> None:
        self.job_id = job_id
        self._wire = wire
        self._deliver = deliver
        self._on_end = on_end
        self._hint = hint
        self._read_idle = read_idle
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Optional[requests.Response] = None
        self._mapper = EventMapper(job_id)
        self.connected = False
        self._thread = threading.Thread(target=self._run, name=f"comfysync-v2-sse-{name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def stop(self, join: bool = True) -> None:
        """Stop reading: closes the open response (which ends a blocked read) and joins
        the thread unless called from it."""
        self._stop.set()
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            abort(response)
        if join and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT)

    def _run(self) -> None:
        reason = "stopped"
        backoff = Backoff(_BACKOFF_BASE, _BACKOFF_CAP)
        try:
            while not self._stop.is_set():
                outcome = self._read_once(backoff)
                if outcome is not None:
                    reason = outcome
                    return
                delay = backoff.next_delay()
                log.debug("job %s: event stream dropped; reconnecting in %.2f s",
                          self.job_id, delay)
                if self._stop.wait(delay):
                    return
        except Exception:  # a bug must not go unnoticed, nor kill more than this stream
            log.exception("job %s: event stream reader failed", self.job_id)
            reason = "error"
        finally:
            self.connected = False
            if not self._stop.is_set():
                self._on_end(self.job_id, reason)

    def _read_once(self, backoff: Backoff) -> Optional[str]:
        """One connection: None when it dropped (reconnect), else why to stop."""
        try:
            response = self._wire.open_events(self.job_id, self._read_idle)
        except ComfyHTTPError as exc:
            if exc.status == 429:
                log.info("job %s: the deployment allows no more event streams; following "
                         "it by polling", self.job_id)
                return "limit"
            if exc.status in (404, 405, 501):
                return "gone"
            log.debug("job %s: event stream refused: %s", self.job_id, exc)
            return None
        except ComfyError as exc:
            log.debug("job %s: event stream unavailable: %s", self.job_id, exc)
            return None
        with self._lock:
            if self._stop.is_set():
                response.close()
                return "stopped"
            self._response = response
        self.connected = True
        backoff.reset()
        decoder = SseDecoder()
        hinted = self._mapper.terminal is not None
        try:
            for raw_line in response.iter_lines(chunk_size=None):
                line = raw_line.decode("utf-8", errors="replace")
                for name, data in decoder.feed(line):
                    for event in self._mapper.map(name, data):
                        self._deliver(event)
                    if not hinted and self._mapper.terminal is not None:
                        hinted = True
                        self._hint(self.job_id)
            if hinted:
                return "terminal"
        except Exception as exc:
            if self._stop.is_set():  # stop() closed the response under the read
                return "stopped"
            if not isinstance(exc, (requests.exceptions.RequestException, OSError, ValueError)):
                raise
            log.debug("job %s: event stream broke: %s", self.job_id, exc)
        finally:
            self.connected = False
            with self._lock:
                self._response = None
            response.close()
        return "stopped" if self._stop.is_set() else None


class V2EventSource:
    """The live events of one client's v2 jobs, delivered to ``sink`` on one thread.

    ``on_hint(job_id)`` is called (on the stream's thread) when a stream says its job ended,
    so the job resource can be read at once. :meth:`watch` starts following a job (after a
    first read of the job found it unfinished: a stream opened after the job ended says so in
    its first frame); :meth:`unwatch` stops. Streams never decide completion, so
    :attr:`authoritative` is False.
    """

    authoritative = False

    def __init__(
        self,
        wire: V2Wire,
        sink: Sink,
        *,
        name: str,
        on_hint: Callable[[str], None] = lambda job_id: None,
    ) -> None:
        self._wire = wire
        self._sink = sink
        self._on_hint = on_hint
        self._name = name
        self._lock = threading.Lock()
        self._streams: Dict[str, JobStream] = {}
        self._retired: List[JobStream] = []  # stopped or ended: joined by stop()
        self._queue: queue.SimpleQueue[Union[ev.Event, object]] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._stopped = False
        self._limited = False  # the deployment refused a stream: new jobs are polled only

    # -- the event-source protocol -------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Start the delivery thread (nothing to connect: streams open per job)."""
        with self._lock:
            if self._stopped:
                raise ComfyConnectionError("this client is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver_loop, daemon=True,
                                                name=f"comfysync-v2-events-{self._name}")
                self._thread.start()

    def stop(self) -> None:
        """Close every stream and join the threads. Idempotent."""
        with self._lock:
            self._stopped = True
            streams = list(self._streams.values()) + self._retired
            self._streams.clear()
            self._retired = []
            thread = self._thread
        for stream in streams:
            stream.stop()
        if thread is not None:
            self._queue.put(_Stop)
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stopped

    @property
    def connected(self) -> bool:
        return self.alive

    def owns_current_thread(self) -> bool:
        return self._thread is threading.current_thread()

    # -- jobs ----------------------------------------------------------------------------

    def watch(self, job_id: str) -> None:
        """Open the job's event stream (unless the deployment refused streams before)."""
        with self._lock:
            if self._stopped or self._limited or job_id in self._streams:
                return
            stream = JobStream(self._wire, job_id, self._queue.put, self._ended,
                               hint=self._on_hint, name=f"{self._name}-{job_id[:8]}")
            self._streams[job_id] = stream
        stream.start()

    def unwatch(self, job_id: str) -> None:
        """Stop following a job (its end is known)."""
        with self._lock:
            stream = self._streams.pop(job_id, None)
            if stream is not None:
                self._retire(stream)
        if stream is not None:
            stream.stop(join=False)

    def _retire(self, stream: JobStream) -> None:
        """Keep a finished stream for :meth:`stop` to join (lock held); forget the ones
        whose thread is over."""
        self._retired = [s for s in self._retired if s.thread.is_alive()]
        self._retired.append(stream)

    def streaming(self, job_id: str) -> bool:
        """True while the job's stream is open."""
        stream = self._streams.get(job_id)
        return stream is not None and stream.connected

    def _ended(self, job_id: str, reason: str) -> None:
        """A stream's thread ended by itself (its own thread)."""
        with self._lock:
            stream = self._streams.pop(job_id, None)
            if stream is not None:
                self._retire(stream)
            if reason == "limit":
                self._limited = True

    def _deliver_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _Stop:
                return
            try:
                if isinstance(item, ev.Event):
                    self._sink(item)
            except Exception:  # the sink handles callback errors; this is a bug
                log.exception("%s: delivering a v2 event failed", self._name)
