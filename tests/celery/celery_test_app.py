"""The Celery app of the tests' workers (``celery -A celery_test_app worker``) and of the tests.

Everything comes from the environment the test sets: ``CELERY_TEST_BROKER`` (a Redis URL;
the result backend is the next database of the same server), ``COMFYSYNC_SERVERS`` (read
by comfysync.celery itself, on the worker's first task) and ``CELERY_TEST_MAX_RETRIES``.
"""

from __future__ import annotations

import os
from typing import Any, Dict

from celery import Celery

import comfysync.celery

BROKER = os.environ.get("CELERY_TEST_BROKER", "redis://127.0.0.1:6379/0")

app = Celery("comfysync_tests", broker=BROKER, backend=BROKER[: BROKER.rindex("/")] + "/1")
app.conf.update(
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_expires=600,
    worker_hijack_root_logger=False,
)
app.conf.comfysync = {
    "progress_interval": 0.05,
    "retry_backoff": 0.2,
    "retry_backoff_max": 1.0,
    "max_retries": int(os.environ.get("CELERY_TEST_MAX_RETRIES", "3")),
}
run_workflow = comfysync.celery.install(app)


@app.task(base=comfysync.celery.ComfyTask, bind=True, name="tests.two_prompts")
def two_prompts(self: comfysync.celery.ComfyTask, workflow: Dict[str, Any]) -> Any:
    """A user's own task: two prompts, each with its own id derived from the task id."""
    first = self.run_workflow(workflow, set={"4.text": "first"})
    second = self.submit(workflow, set={"4.text": "second"}).wait(timeout=30)
    return [first.to_json(), second.to_json()]
