"""The same script against a local ComfyUI, a remote one, comfy-api-proxy, a serverless
deployment or Comfy Cloud: only the URL (and, for Comfy's hosted ones, the key) changes.

    python samples/cloud_or_local.py http://127.0.0.1:8188       # ComfyUI itself
    python samples/cloud_or_local.py http://127.0.0.1:8189       # comfy-api-proxy before it
    COMFY_API_KEY=... python samples/cloud_or_local.py https://cloud.comfy.org
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi, Workflow, events

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    wf = Workflow.load(WORKFLOWS / "text_to_image.json")
    wf.set("Positive prompt.text", "a lighthouse on a cliff at dawn, oil painting")
    wf.randomize_seeds()

    def progress(event: events.Progress) -> None:
        print(f"  step {event.value:g}/{event.max:g}", end="\r", flush=True)

    # api_key= or $COMFY_API_KEY: sent only to this URL's origin, never to download hosts
    with ComfyApi(url) as api:
        print(f"{api.url} speaks the {api.surface} surface")
        result = api.run_workflow(wf, timeout=600, on_progress=progress)
        print(f"job {result.prompt_id}: {result.status}")
        for path in result.save_all("sample-out/cloud_or_local"):
            print("saved", path)


if __name__ == "__main__":
    main()
