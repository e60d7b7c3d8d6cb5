"""``python -m comfysync.testing``: run a FakeComfyUI as a process of its own.

For tests whose clients live in other processes (Celery workers, a CLI under test) and for
trying the SDK without a GPU. With ``--port 0`` (the default) the server takes an ephemeral
port; the first line written to stdout is its URL (``http://127.0.0.1:<port>``), so a parent
process reads one line and knows where to connect. The server runs until SIGTERM or SIGINT
(Ctrl-C), then stops cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, List, Optional


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m comfysync.testing",
        description="Run a FakeComfyUI server; its URL is printed on the first line.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0: an ephemeral one)")
    parser.add_argument("--workdir", default=None,
                        help="folder for input/output/temp/user (default: a temporary one)")
    parser.add_argument("--jobs-api", action="store_true",
                        help="serve the newer /api/jobs routes")
    parser.add_argument("--preview-method", default="auto", help="auto, latent2rgb, taesd, none")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from ._server import FakeComfyUI

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = FakeComfyUI(
        host=args.host,
        port=args.port,
        workdir=args.workdir,
        jobs_api=args.jobs_api,
        preview_method=args.preview_method,
    )
    server.start()
    try:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
