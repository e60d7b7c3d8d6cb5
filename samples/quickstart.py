"""Quickstart: connect, run ComfyUI's default text-to-image workflow, save the image.

    python samples/quickstart.py [SERVER_URL]      # default: $COMFYUI_URL or 127.0.0.1:8188
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi, Workflow

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    wf = Workflow.load(WORKFLOWS / "text_to_image.json")
    wf.set("Positive prompt.text", "a lighthouse on a cliff at dawn, oil painting")
    wf.randomize_seeds()

    with ComfyApi(url) as api:  # connects the listener thread; close() joins it
        print("server:", api.get_system_stats().comfyui_version)
        checkpoints = api.get_checkpoints()
        if checkpoints and wf["4"].inputs["ckpt_name"] not in checkpoints:
            wf.set("4.ckpt_name", checkpoints[0])  # use a checkpoint this server has
        result = api.run_workflow(wf, timeout=300)
        print(f"prompt {result.prompt_id} finished in {result.duration:.2f} s")
        for path in result.save_all("sample-out/quickstart"):  # every file, dir created
            print("saved", path)


if __name__ == "__main__":
    main()
