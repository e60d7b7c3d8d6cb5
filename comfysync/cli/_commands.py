"""The ``comfysync`` commands that are one REST call each: queue, history, stats, nodes,
interrupt, upload, download.

Each prints a short human-readable answer on stdout, or with ``--json`` the same facts as one
JSON document (see ``_output.to_jsonable``). None of them opens the WebSocket
(``rest_api``): they work through proxies that refuse sockets, and fail with the HTTP error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from .._rest.models import FileRef, HistoryEntry, InputSpec, NodeDef, QueueItem
from .._suggest import did_you_mean
from . import EXIT_FAILED, EXIT_OK, UsageError
from ._common import rest_api
from ._output import print_json

if TYPE_CHECKING:
    from .._client import ComfyApi

__all__ = ["cmd_queue", "cmd_history", "cmd_stats", "cmd_nodes", "cmd_interrupt",
           "cmd_upload", "cmd_download", "parse_file_ref"]


def _queue_item(item: QueueItem) -> Dict[str, Any]:
    return {"number": item.number, "prompt_id": item.prompt_id,
            "outputs_to_execute": list(item.outputs_to_execute)}


def cmd_queue(args: argparse.Namespace) -> int:
    with rest_api(args) as api:
        state = api.get_queue()
    if args.json:
        print_json({"running": [_queue_item(i) for i in state.running],
                    "pending": [_queue_item(i) for i in state.pending]})
        return EXIT_OK
    if not state.running and not state.pending:
        print("the queue is empty")
        return EXIT_OK
    print(f"{len(state.running)} running, {len(state.pending)} pending")
    for label, items in (("running", state.running), ("pending", state.pending)):
        for item in items:
            print(f"  {label:<8} #{item.number:<5} {item.prompt_id}")
    return EXIT_OK


def _history_status(entry: HistoryEntry) -> str:
    """What ``history`` calls an entry's outcome, in text and ``--json`` alike. ComfyUI records
    an interrupted prompt with ``status_str`` ``"error"``; its ``execution_interrupted``
    message tells the two apart."""
    return "interrupted" if entry.interrupted else (entry.status_str or "?")


def _history_item(prompt_id: str, entry: HistoryEntry) -> Dict[str, Any]:
    return {
        "prompt_id": prompt_id,
        "status": _history_status(entry),
        "status_str": entry.status_str,  # as the server recorded it
        "completed": entry.completed,
        "duration": entry.duration,
        "outputs": sorted(entry.outputs),
        "files": [{"node_id": node_id, **ref.to_wire()} for node_id, ref in entry.output_files()],
    }


def cmd_history(args: argparse.Namespace) -> int:
    with rest_api(args) as api:
        entries = api.get_histories(max_items=args.max_items)
    newest_first = list(reversed(list(entries.items())))
    if args.json:
        print_json([_history_item(pid, entry) for pid, entry in newest_first])
        return EXIT_OK
    if not newest_first:
        print("the history is empty")
        return EXIT_OK
    for prompt_id, entry in newest_first:
        status = _history_status(entry)
        files = len(entry.output_files())
        took = f"  {entry.duration:.2f} s" if entry.duration is not None else ""
        print(f"{prompt_id}  {status:<11} {files} file{'s' if files != 1 else ''}{took}")
    return EXIT_OK


def _gib(value: Optional[int]) -> str:
    return "?" if value is None else f"{value / 2**30:.1f} GiB"


def cmd_stats(args: argparse.Namespace) -> int:
    with rest_api(args) as api:
        stats = api.get_system_stats()
    if args.json:
        print_json(stats.raw)
        return EXIT_OK
    python = (stats.python_version or "?").split()[0]
    print(f"ComfyUI {stats.comfyui_version or '?'}  (Python {python}, "
          f"PyTorch {stats.pytorch_version or '?'}, {stats.os or '?'})")
    print(f"RAM: {_gib(stats.ram_free)} free of {_gib(stats.ram_total)}")
    for dev in stats.devices:
        index = f" {dev.index}" if dev.index is not None else ""
        print(f"device{index}: {dev.name} ({dev.type}), "
              f"VRAM {_gib(dev.vram_free)} free of {_gib(dev.vram_total)}")
    return EXIT_OK


def _describe_input(spec: InputSpec) -> str:
    if spec.choices is not None:
        shown = ", ".join(str(v) for v in spec.choices[:8])
        text = f"{spec.name}: one of [{shown}{', ...' if len(spec.choices) > 8 else ''}]"
    else:
        text = f"{spec.name}: {spec.type}"
    facts = [f"{key}={spec.options[key]!r}" for key in ("default", "min", "max", "step")
             if key in spec.options]
    return text + (f" ({', '.join(facts)})" if facts else "")


def _print_node(node: NodeDef) -> None:
    title = node.name if node.display_name == node.name else f"{node.name}  ({node.display_name})"
    print(title)
    print(f"  category: {node.category or '-'}" + ("  [output node]" if node.output_node else ""))
    if node.description:
        print(f"  {node.description}")
    for category in ("required", "optional"):
        specs = [spec for spec in node.inputs() if spec.category == category]
        if specs:
            print(f"  {category} inputs:")
            for spec in specs:
                print(f"    {_describe_input(spec)}")
    if node.output:
        print("  outputs: " + ", ".join(
            f"{name} ({kind})" if name != kind else kind
            for name, kind in zip(node.output_name, node.output)))


def cmd_nodes(args: argparse.Namespace) -> int:
    with rest_api(args) as api:
        defs = api.get_node_defs(args.node_class) if args.node_class else api.get_node_defs()
        if args.node_class and args.node_class not in defs:
            known = api.get_node_defs()  # the whole list, for "did you mean"
            raise UsageError(f"the server has no node class {args.node_class!r}"
                             f"{did_you_mean(args.node_class, known)} "
                             "(run `comfysync nodes` for the list)")
    if args.node_class:
        node = defs[args.node_class]
        if args.json:
            print_json(node.raw)
        else:
            _print_node(node)
        return EXIT_OK
    if args.json:
        print_json({name: {"category": d.category, "display_name": d.display_name,
                           "output_node": d.output_node} for name, d in sorted(defs.items())})
        return EXIT_OK
    width = max((len(name) for name in defs), default=0)
    for name, d in sorted(defs.items()):
        print(f"{name:<{width}}  {d.category}")
    return EXIT_OK


def _interrupt(api: ComfyApi, prompt_id: Optional[str]) -> Tuple[str, Optional[str], str]:
    """Interrupt the running prompt (only ``prompt_id``, when given) after asking ``GET
    /queue`` what runs: ``(status, interrupted prompt id or None, message)``. Status is
    ``interrupted``, ``idle`` (nothing runs), ``pending``, ``finished`` or ``unknown``.

    The interrupt names the prompt seen running, so one that starts in between is spared.
    """
    state = api.get_queue()
    running = [item.prompt_id for item in state.running]
    target = prompt_id if prompt_id is not None else (running[0] if running else None)
    if target is None:
        return "idle", None, "nothing is running: nothing to interrupt"
    if target in running:
        api.interrupt(target)
        return "interrupted", target, f"interrupt sent for the running prompt {target}"
    if any(item.prompt_id == target for item in state.pending):
        return "pending", None, (
            f"prompt {target} is pending, not running: nothing was interrupted; to drop it "
            f'from the queue: POST {api.url}/queue {{"delete": ["{target}"]}} '
            "(ComfyApi.delete_from_queue)")
    if api.get_history(target) is not None:
        return "finished", None, f"prompt {target} has already finished: nothing was interrupted"
    return "unknown", None, (f"prompt {target} is neither running nor queued on this server: "
                             "nothing was interrupted")


def cmd_interrupt(args: argparse.Namespace) -> int:
    with rest_api(args) as api:
        status, interrupted, message = _interrupt(api, args.prompt_id)
    if args.json:
        print_json({"interrupted": interrupted, "status": status, "prompt_id": args.prompt_id})
    else:
        print(message)
    return EXIT_OK


def parse_file_ref(text: str, file_type: str) -> FileRef:
    """``"clipspace/x.png"`` → ``FileRef(filename="x.png", subfolder="clipspace", type=…)``."""
    subfolder, _, filename = text.replace("\\", "/").rpartition("/")
    if not filename:
        raise UsageError(f"--original-ref {text!r}: expected [SUBFOLDER/]NAME")
    return FileRef(filename=filename, subfolder=subfolder, type=file_type)


def _ref_json(ref: FileRef) -> Dict[str, Any]:
    return {"name": ref.filename, "subfolder": ref.subfolder, "type": ref.type}


def cmd_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {args.file}")
    if args.mask and not args.original_ref:
        raise UsageError("--mask needs --original-ref (the image the mask applies to)")
    if args.original_ref and not args.mask:
        raise UsageError("--original-ref only makes sense with --mask")
    with rest_api(args) as api:
        if args.mask:
            original = parse_file_ref(args.original_ref, args.original_type)
            ref = api.upload_mask(path, original_ref=original, subfolder=args.subfolder,
                                  type=args.file_type, overwrite=args.overwrite)
        else:
            ref = api.upload_image(path, subfolder=args.subfolder, type=args.file_type,
                                   overwrite=args.overwrite)
    if args.json:
        print_json(_ref_json(ref))
    else:
        where = f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename
        print(f"uploaded {path.name} as {where} ({ref.type})")
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    ref = FileRef(filename=args.filename, subfolder=args.subfolder, type=args.file_type)
    with rest_api(args) as api:
        # the rule of OutputFile.save: into a directory without overwriting, or the exact
        # file path given (``--out x.png``)
        path = api.download(ref, args.out)
    if args.json:
        print_json({**_ref_json(ref), "path": str(path)})
    else:
        print(f"saved {path}")
    return EXIT_OK if Path(path).exists() else EXIT_FAILED
