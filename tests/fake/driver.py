"""A tiny raw client for FakeComfyUI tests: websocket-client + requests, no SDK.

``WsClient`` reads frames on a background thread into a list guarded by a condition, so a
test waits for "the frame I expect" with a timeout instead of sleeping. Other test suites may
reuse it (``from tests.fake.driver import WsClient, post_prompt``).
"""

from __future__ import annotations

import json
import struct
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests
import websocket

#: ("text", parsed JSON) | ("raw", unparsable text) | ("binary", bytes) | ("closed", None)
Frame = Tuple[str, Any]

#: message type of :func:`barrier` markers (kept out of ``WsClient.frames``)
BARRIER = "comfysync.test.barrier"


class WsClient:
    """One WebSocket connection, frames collected in arrival order."""

    def __init__(
        self,
        ws_base: str,
        client_id: Optional[str] = None,
        feature_flags: Optional[Dict[str, Any]] = None,
        timeout: float = 10.0,
        headers: Optional[List[str]] = None,
    ) -> None:
        url = ws_base if client_id is None else f"{ws_base}?clientId={client_id}"
        self._ws = websocket.create_connection(url, timeout=timeout, header=headers or [])
        self._ws.settimeout(None)
        self._cond = threading.Condition()
        self.frames: List[Frame] = []
        self.barriers: List[str] = []
        self.closed = False
        if feature_flags is not None:
            self.send_json({"type": "feature_flags", "data": feature_flags})
        self._thread = threading.Thread(target=self._read, name="test-ws-reader", daemon=True)
        self._thread.start()
        self.sid: str = self.wait_for_type("status", timeout=timeout)["data"]["sid"]

    def _read(self) -> None:
        try:
            while True:
                opcode, data = self._ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    text = data.decode("utf-8")
                    try:
                        frame: Frame = ("text", json.loads(text))
                    except ValueError:
                        frame = ("raw", text)
                    if isinstance(frame[1], dict) and frame[1].get("type") == BARRIER:
                        with self._cond:
                            self.barriers.append(str(frame[1]["data"]))
                            self._cond.notify_all()
                        continue
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    frame = ("binary", bytes(data))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                else:
                    continue
                with self._cond:
                    self.frames.append(frame)
                    self._cond.notify_all()
        except (websocket.WebSocketException, OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def send_json(self, message: Any) -> None:
        self._ws.send(json.dumps(message))

    def send_text(self, text: str) -> None:
        self._ws.send(text)

    # ------------------------------------------------------------------ waiting
    def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 10.0,
                 start: int = 0) -> Frame:
        """The first frame (from index ``start``) matching ``predicate``."""
        def find() -> Optional[Frame]:
            for frame in self.frames[start:]:
                if predicate(frame):
                    return frame
            return None

        with self._cond:
            found = self._cond.wait_for(lambda: find() is not None or self.closed, timeout)
            result = find()
        if not found or result is None:
            raise TimeoutError(f"no matching frame within {timeout}s; got {self.summary()}")
        return result

    def wait_for_type(self, event_type: str, predicate: Optional[Callable[[Any], bool]] = None,
                      timeout: float = 10.0, start: int = 0) -> Any:
        """The first JSON message of ``event_type`` (matching ``predicate(message)``)."""
        frame = self.wait_for(
            lambda f: f[0] == "text" and isinstance(f[1], dict) and f[1].get("type") == event_type
            and (predicate is None or predicate(f[1])),
            timeout,
            start,
        )
        return frame[1]

    def wait_done(self, prompt_id: str, timeout: float = 10.0) -> Any:
        """Until ``executing {node: null}`` of this prompt."""
        return self.wait_for_type(
            "executing",
            lambda m: m["data"].get("node") is None and m["data"].get("prompt_id") == prompt_id,
            timeout,
        )

    def wait_count(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.frames) >= count or self.closed, timeout):
                raise TimeoutError(f"{len(self.frames)} < {count} frames: {self.summary()}")

    def wait_closed(self, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed, timeout):
                raise TimeoutError("socket still open")

    def snapshot(self) -> List[Frame]:
        with self._cond:
            return list(self.frames)

    def messages(self, event_type: Optional[str] = None) -> List[Any]:
        return [f[1] for f in self.snapshot() if f[0] == "text" and isinstance(f[1], dict)
                and (event_type is None or f[1].get("type") == event_type)]

    def types(self) -> List[str]:
        out = []
        for kind, data in self.snapshot():
            if kind == "text" and isinstance(data, dict):
                out.append(str(data.get("type")))
            elif kind == "binary":
                out.append(f"bin{struct.unpack('>I', data[:4])[0] if len(data) >= 4 else '?'}")
            else:
                out.append(kind)
        return out

    def summary(self) -> str:
        return ", ".join(self.types())

    # ------------------------------------------------------------------ closing
    def close(self, clean: bool = True, timeout: float = 5.0) -> None:
        """Close the socket (``clean``: with a close handshake) and join the reader."""
        if clean and not self.closed:
            try:
                self._ws.send_close()
            except (websocket.WebSocketException, OSError):
                pass
            with self._cond:
                self._cond.wait_for(lambda: self.closed, timeout)
        try:
            self._ws.shutdown()
        except (websocket.WebSocketException, OSError):
            pass
        self._thread.join(timeout)

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def barrier(server: Any, *clients: WsClient, timeout: float = 10.0) -> None:
    """Wait until every client has received everything the server sent so far: a marker
    broadcast after those messages (delivery is ordered) has reached each of them."""
    server.wait_for_idle(timeout)
    token = uuid.uuid4().hex
    server.send_message(BARRIER, token)
    for client in clients:
        with client._cond:
            if not client._cond.wait_for(lambda c=client: token in c.barriers, timeout):
                raise TimeoutError("barrier not received")


def binary_type(frame: bytes) -> int:
    return int(struct.unpack(">I", frame[:4])[0])


def post_prompt(base_url: str, prompt: Dict[str, Any], client_id: Optional[str] = None,
                **extra: Any) -> requests.Response:
    body: Dict[str, Any] = {"prompt": prompt, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    return requests.post(f"{base_url}/prompt", json=body, timeout=10)


def run_prompt(base_url: str, ws: WsClient, prompt: Dict[str, Any], timeout: float = 10.0,
               **extra: Any) -> str:
    """Submit through ``ws``'s client id and wait for the end; returns the prompt id."""
    response = post_prompt(base_url, prompt, ws.sid, **extra)
    response.raise_for_status()
    prompt_id = str(response.json()["prompt_id"])
    ws.wait_done(prompt_id, timeout)
    return prompt_id
