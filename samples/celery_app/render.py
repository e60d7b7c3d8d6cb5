"""The Celery app of the example: run it with ``celery -A render worker``.

Configuration comes from the environment, as in a deployment:
``REDIS_URL`` (broker; results go to the next database) and ``COMFYSYNC_SERVERS`` (the ComfyUI
servers, comma-separated; comfysync.celery reads it in each worker process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

from celery import Celery

import comfysync.celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WORKFLOW = Path(__file__).resolve().parent / "workflow_api.json"

app = Celery("render", broker=REDIS_URL, backend=REDIS_URL.rsplit("/", 1)[0] + "/1")
app.conf.update(worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
# Servers from $COMFYSYNC_SERVERS; everything else a ComfyApi / ComfyPool accepts may go here.
app.conf.comfysync = {"timeout": 30, "progress_interval": 0.1}

# The ready task: app.send_task("comfysync.run_workflow", args=[workflow], kwargs={...})
comfysync.celery.install(app)


@app.task(base=comfysync.celery.ComfyTask, bind=True, name="render.captioned_variants")
def captioned_variants(self: comfysync.celery.ComfyTask, caption: str,
                       seeds: List[int]) -> List[Dict[str, Any]]:
    """One of your own tasks: several prompts in one task. Each gets an id derived from the
    task id and its position, so a redelivered task re-attaches to every one of them."""
    prompts = [self.submit(str(WORKFLOW), set={"Sampler.seed": seed, "Caption.text": caption})
               for seed in seeds]
    return [p.wait(timeout=120).to_json() for p in prompts]
