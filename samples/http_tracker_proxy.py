"""Behind a reverse proxy: a path prefix, extra headers, a token, and HTTP-only tracking.

    python samples/http_tracker_proxy.py [SERVER_URL]
    # e.g. https://example.org/comfy  with  COMFYUI_TOKEN=...  PROXY_HEADER="X-Api-Key: ..."

Some proxies do not pass WebSockets. ``tracker="http"`` follows prompts by polling
``/history/{id}`` and ``/queue`` instead: same results and errors, no progress events.
The prefix is kept on every route (ComfyUI itself also serves every route under ``/api``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    header = os.environ.get("PROXY_HEADER", "X-Requested-By: comfysync-sample")
    name, _, value = header.partition(":")
    api = ComfyApi(
        url,
        tracker="http",                              # no WebSocket needed
        token=os.environ.get("COMFYUI_TOKEN"),       # "Authorization: Bearer ..." when set
        headers={name.strip(): value.strip()},       # e.g. an API key the proxy checks
        timeout=30.0,
    )
    with api:
        print(api)                                   # repr never shows tokens or passwords
        print("queue remaining:", api.get_queue_remaining())
        result = api.run_workflow(str(WORKFLOWS / "progress.json"), timeout=120)
        print(f"prompt {result.prompt_id}: {result.status}, text {result.text}")


if __name__ == "__main__":
    main()
