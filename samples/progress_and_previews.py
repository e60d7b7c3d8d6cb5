"""Progress and previews: draw a text progress bar and keep the sampler's live previews.

    python samples/progress_and_previews.py [SERVER_URL]

Previews are *events* (``b_preview`` frames while a node runs), not outputs: the final
images come back in ``result.images``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi, Workflow, events

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
OUT = Path("sample-out/progress")


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    wf = Workflow.load(WORKFLOWS / "text_to_image.json")
    wf.set("3.steps", 8)
    wf.randomize_seeds()
    previews: list[events.Preview] = []

    def on_progress(ev: events.Progress) -> None:  # runs on the listener thread
        done = int(20 * ev.value / ev.max) if ev.max else 0
        print(f"\rnode {ev.node}: [{'#' * done}{'.' * (20 - done)}] {ev.value:g}/{ev.max:g}",
              end="", flush=True)

    def on_preview(ev: events.Preview) -> None:
        previews.append(ev)

    with ComfyApi(url) as api:
        checkpoints = api.get_checkpoints()
        if checkpoints and wf["4"].inputs["ckpt_name"] not in checkpoints:
            wf.set("4.ckpt_name", checkpoints[0])
        result = api.run_workflow(wf, timeout=300, on_progress=on_progress,
                                  on_preview=on_preview)
        print()
        OUT.mkdir(parents=True, exist_ok=True)
        if previews:
            last = previews[-1]
            ext = "png" if last.mime_type == "image/png" else "jpg"
            (OUT / f"last_preview.{ext}").write_bytes(last.image)
        print(f"{len(previews)} previews received; last one saved in {OUT}")
        for image in result.images:
            print("final image:", image.save(OUT))


if __name__ == "__main__":
    main()
