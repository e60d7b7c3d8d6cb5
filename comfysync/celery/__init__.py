"""``comfysync.celery``: run ComfyUI workflows as Celery tasks (extra ``celery``).

::

    from celery import Celery
    import comfysync.celery

    app = Celery("render", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/1")
    app.conf.comfysync = {"servers": ["gpu1:8188", "gpu2:8188"]}   # or $COMFYSYNC_SERVERS
    comfysync.celery.install(app)          # registers the task "comfysync.run_workflow"

    res = app.send_task("comfysync.run_workflow", args=[workflow], kwargs={"set": {"3.seed": 42}})
    res.get()   # {"prompt_id", "server", "status", "duration", "text", "files": [...]}

Each worker process holds one :class:`~comfysync.ComfyApi` (one server) or
:class:`~comfysync.ComfyPool` (several), made on its first task and closed when it shuts
down. A task's prompt id derives from the task id, so a task delivered again after its worker
died follows the prompt already on a server instead of running it twice. The README's
"Scaling out" section describes the whole behaviour; ``samples/celery_app`` is an example.
"""

from __future__ import annotations

try:
    import celery as _celery  # noqa: F401  (checked first, for a clear message)
except ImportError as exc:
    raise ImportError(
        f"comfysync.celery needs the 'celery' extra ({exc.name or 'celery'} is missing): "
        'pip install "comfysync[celery]"',
        name=exc.name,
    ) from exc

from ._documents import ComfyTaskError, WorkflowRun
from ._process import Snapshot
from ._settings import SERVERS_ENV, Settings
from ._task import (
    PROGRESS,
    SUBMITTING,
    ComfyTask,
    TaskPrompt,
    install,
    prompt_id_for,
    settings_of,
)

__all__ = [
    "install",
    "ComfyTask",
    "TaskPrompt",
    "WorkflowRun",
    "ComfyTaskError",
    "PROGRESS",
    "SUBMITTING",
    "SERVERS_ENV",
    "Settings",
    "Snapshot",
    "prompt_id_for",
    "settings_of",
]
