"""How many events per second comfysync decodes and dispatches (target: >= 20 000/s end to end).

Run from the repository root: ``python tests/bench/bench_events.py [--events N]``.
Not a test (pytest does not collect tests/bench); it prints figures:

1. ``json.loads`` alone on the same frames — the floor any Python client pays;
2. ``decode_text`` alone;
3. ``decode_text`` + ``EventBus.emit`` to one no-op callback (plus the "*" subscription every
   ComfyApi has for its tracker) — the listener's per-frame work;
4. end to end: a local server pushes N frames over a real WebSocket and the listener thread
   receives, decodes and dispatches them (socket and websocket-client framing included).

The frames are the recorded ComfyUI v0.3.64 messages of ``tests/data/ws_messages.jsonl``
(progress, progress_state, executing, status, …) cycled to N, plus type-4 previews.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from comfysync import events as ev  # noqa: E402
from comfysync._dispatch import EventBus  # noqa: E402
from comfysync._ws.listener import Listener  # noqa: E402
from comfysync._ws.wire import decode_binary, decode_text  # noqa: E402

DATA = ROOT / "tests" / "data" / "ws_messages.jsonl"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def load_frames() -> Tuple[List[bytes], List[bytes]]:
    texts: List[bytes] = []
    binaries: List[bytes] = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "text":
            texts.append(json.dumps(record["data"]).encode())
        elif record["data"]["event_type"] == 4:
            meta = json.dumps(record["data"]["metadata"]).encode()
            image = bytes.fromhex(record["data"]["image_head_hex"]) + b"\x00" * 1400
            binaries.append(struct.pack(">II", 4, len(meta)) + meta + image)
    return texts, binaries


def rate(n: int, fn: Callable[[], None], repeat: int = 3) -> float:
    """Best of ``repeat`` runs (the machine may be busy with other work)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x80 | opcode, 127]) + struct.pack(">Q", n)
    return head + payload


class PushServer:
    """Accepts one WebSocket, greets it like ComfyUI, then pushes a prepared byte stream."""

    def __init__(self, stream: bytes) -> None:
        self.stream = stream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            greeting = {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "bench"},
            }
            conn.sendall(_frame(1, json.dumps(greeting).encode()))
            self.go.wait(30)
            conn.sendall(self.stream)
            while conn.recv(65536):  # drain until the client closes (no RST, no lost frames)
                pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


class _Transport:
    def __init__(self, port: int) -> None:
        self.port = port

    def ws_url(self, client_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}"

    def ws_headers(self) -> List[str]:
        return []

    def ws_sslopt(self) -> dict:  # type: ignore[type-arg]
        return {}


def end_to_end(frames: List[Tuple[int, bytes]]) -> Tuple[float, float]:
    """One run: (events/s of wall time, events/s of the listener thread's own CPU time).
    The second hardly depends on what else the machine is doing."""
    marker = json.dumps({"type": "bench.done", "data": {}}).encode()
    stream = b"".join(_frame(op, payload) for op, payload in frames) + _frame(1, marker)
    server = PushServer(stream)
    bus = EventBus()
    bus.on("*", lambda e: None)  # the tracker's subscription
    bus.on("progress", lambda e: None)
    done = threading.Event()
    cpu: List[float] = []
    bus.on("bench.done", lambda e: (cpu.append(time.thread_time()), done.set()))
    listener = Listener(_Transport(server.port), "bench0000", bus.emit, ping_interval=None)
    try:
        listener.start(timeout=10)
        cpu_start: List[float] = []
        bus.once("*", lambda e: cpu_start.append(time.thread_time()))
        start = time.perf_counter()
        server.go.set()
        if not done.wait(120):
            raise RuntimeError("the listener did not receive every frame")
        wall = time.perf_counter() - start
        return len(frames) / wall, len(frames) / (cpu[0] - cpu_start[0])
    finally:
        listener.stop()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events

    texts, binaries = load_frames()
    text_frames = (texts * (n // len(texts) + 1))[:n]
    bus = EventBus()
    bus.on("*", lambda e: None)
    bus.on("progress", lambda e: None)

    def only_json() -> None:
        for frame in text_frames:
            json.loads(frame)

    def only_decode() -> None:
        for frame in text_frames:
            decode_text(frame)

    def decode_and_emit() -> None:
        emit = bus.emit
        for frame in text_frames:
            emit(decode_text(frame))

    previews = (binaries * (n // 10 // len(binaries) + 1))[: n // 10]

    def previews_decode_and_emit() -> None:
        for frame in previews:
            bus.emit(decode_binary(frame))

    mixed = [(1, f) for f in text_frames] + [(2, f) for f in previews]
    print(f"comfysync event throughput, {n} recorded text frames (Python {sys.version.split()[0]})")
    floor = rate(n, only_json)
    print(f"  json.loads alone (baseline)         {floor:>12,.0f} frames/s")
    print(f"  decode_text                         {rate(n, only_decode):>12,.0f} events/s")
    dispatched = rate(n, decode_and_emit)
    print(
        f"  decode_text + emit (no-op callback) {dispatched:>12,.0f} events/s"
        f"  ({dispatched / floor:.0%} of json.loads)"
    )
    print(
        f"  decode_binary + emit (type-4, 1.5 kB) "
        f"{rate(len(previews), previews_decode_and_emit):>10,.0f} events/s"
    )
    runs = [end_to_end(mixed) for _ in range(3)]
    wire = max(w for w, _ in runs)  # best of 3, as above
    thread_cpu = max(c for _, c in runs)
    print(f"  listener thread end to end (socket) {wire:>12,.0f} events/s")
    print(f"    per second of listener CPU time    {thread_cpu:>12,.0f} events/s")
    verdict = "meets" if min(dispatched, wire) >= 20_000 else "MISSES"
    print(f"  target >= 20,000 events/s: {verdict}")
    assert ev.Progress.TYPE == "progress"


if __name__ == "__main__":
    main()
