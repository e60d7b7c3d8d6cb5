"""``comfysync demo``: see comfysync work in one command, with no server and no GPU.

Starts an embedded :class:`~comfysync.testing.FakeComfyUI` (the ``testing`` extra), runs
ComfyUI's default text-to-image workflow on it with the same progress display as
``comfysync run``, saves the image and says where it went.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from typing import TYPE_CHECKING, Any, Dict

from .._workflow.workflow import Workflow
from . import EXIT_OK, SERVER_OPTIONS, UsageError
from ._run import prepare_out_dir, run_and_report

if TYPE_CHECKING:
    from .._client import ComfyApi

__all__ = ["cmd_demo", "default_workflow"]

#: Seconds the demo waits for its own (fake, fast) server before giving up.
_DEMO_TIMEOUT = 120.0


def default_workflow() -> Dict[str, Any]:
    """ComfyUI's default text-to-image workflow in API format (shipped in ``comfysync/data``)."""
    text = resources.files("comfysync").joinpath("data/default_workflow_api.json").read_text(
        encoding="utf-8")
    data: Dict[str, Any] = json.loads(text)
    return data


def _use_available_checkpoint(api: ComfyApi, wf: Workflow) -> None:
    """Point every CheckpointLoaderSimple at a checkpoint the server lists, if ours is not."""
    available = api.get_checkpoints()
    if not available:
        return
    for node in wf.find(class_type="CheckpointLoaderSimple"):
        if node.inputs.get("ckpt_name") not in available:
            node.inputs["ckpt_name"] = available[0]


def _refuse_server_options(args: argparse.Namespace) -> None:
    """``--server``/``--token``/… given before ``demo`` would be ignored: say so instead."""
    given = [f"--{name.replace('_', '-')}" for name, default in SERVER_OPTIONS.items()
             if getattr(args, name, default) != default]
    if given:
        raise UsageError(f"demo runs its own embedded server and takes no server options "
                         f"({', '.join(given)}); to use your server: comfysync run "
                         "WORKFLOW.json --server URL")


def cmd_demo(args: argparse.Namespace) -> int:
    _refuse_server_options(args)
    try:
        from ..testing import FakeComfyUI
    except ImportError as exc:
        raise UsageError(
            f"`comfysync demo` needs the testing extra ({exc.name or exc} is missing): "
            'pip install "comfysync[testing,cli]"') from None
    from .._client import ComfyApi

    out_dir = prepare_out_dir(args.out)
    err = sys.stderr
    with FakeComfyUI() as server:
        err.write(f"comfysync demo: started an embedded FakeComfyUI at {server.url} "
                  "(no GPU, no model weights)\n")
        err.write("comfysync demo: running ComfyUI's default text-to-image workflow...\n")
        err.flush()
        with ComfyApi(server.url) as api:
            wf = Workflow(default_workflow())
            _use_available_checkpoint(api, wf)
            code = run_and_report(api, wf, out_dir=out_dir, timeout=_DEMO_TIMEOUT,
                                  as_json=args.json, progress_mode=args.progress,
                                  server=server.url)
    if code == EXIT_OK and not args.json:
        print(f"\nThe image is in {out_dir.resolve()}.")
        print("Next: point comfysync at your own server and workflow (API or UI format):")
        print("  comfysync run my_workflow.json --server 127.0.0.1:8188 --set 3.seed=42")
    return code
