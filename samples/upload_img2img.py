"""Upload an image and run an image-to-image workflow on it (LoadImage → ImageInvert →
SaveImage), then download the result.

    python samples/upload_img2img.py [SERVER_URL] [IMAGE]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi, Workflow

HERE = Path(__file__).resolve().parent


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    image = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "assets" / "input.png"

    with ComfyApi(url) as api:
        # The server picks the final name (it renames on collisions): always use its answer.
        ref = api.upload_image(image, subfolder="comfysync-samples")
        print(f"uploaded {image.name} as {ref.subfolder}/{ref.filename} ({ref.type})")

        wf = Workflow.load(HERE / "workflows" / "img2img_invert.json")
        # LoadImage takes "subfolder/name" for files in a subfolder of the input directory.
        wf.set("1.image", f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename)
        result = api.run_workflow(wf, timeout=120)

        for out in result.images:
            path = out.save("sample-out/img2img/")  # trailing "/": a directory (created)
            print(f"node {out.node_id} wrote {out.filename}; saved to {path}")


if __name__ == "__main__":
    main()
