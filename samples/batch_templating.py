"""Templating in a loop: one workflow file, several prompts and seeds, all queued at once.

    python samples/batch_templating.py [SERVER_URL]

``submit()`` returns at once with a PromptJob; the server runs the jobs one after the other
and ``job.wait()`` collects each result (no event is missed: every job is registered before
it is posted).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi, Workflow

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
SUBJECTS = ["a red fox in the snow", "a lighthouse at night", "a bowl of ramen, studio light"]


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    template = Workflow.load(WORKFLOWS / "text_to_image.json")

    with ComfyApi(url) as api:
        checkpoints = api.get_checkpoints()
        if checkpoints and template["4"].inputs["ckpt_name"] not in checkpoints:
            template.set("4.ckpt_name", checkpoints[0])

        jobs = []
        for index, subject in enumerate(SUBJECTS):
            wf = template.copy().set_many({           # the template itself stays untouched
                "Positive prompt.text": subject, "3.steps": 4,
                "9.filename_prefix": f"batch_{index}",
            }).randomize_seeds()                      # chainable; wf.seeds() reads them
            jobs.append((subject, wf["3"]["inputs"]["seed"], api.submit(wf)))

        for subject, seed, job in jobs:
            result = job.wait(timeout=300)
            saved = [str(f.save("sample-out/batch/")) for f in result.images]
            print(f"{subject!r} (seed {seed}): {', '.join(saved)}")


if __name__ == "__main__":
    main()
