"""``comfysync run WORKFLOW.json``: template, submit, show progress, save outputs.

The steps a user would otherwise script by hand, with the guarantees of the library:
the workflow may be in UI format (converted with the server's node definitions), ``--set``
and ``--randomize-seeds`` edit it, progress is drawn on stderr while the main thread waits,
Ctrl-C cancels the prompt on the server, and every output file is saved under ``--out``
without overwriting earlier runs. ``--out`` is created and checked before the prompt is
submitted, and a save that fails anyway still reports the prompt (id, ``--json`` document).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

from .. import errors
from .._results import PromptResult
from .._tracking.job import PromptJob
from .._workflow.prompt import PreparedWorkflow, prepare, to_prompt
from .._workflow.workflow import Workflow, coerce_cli_value
from . import (
    EXIT_OK,
    CommandFailed,
    UsageError,
    describe_error,
    exit_code_for,
    interrupt_word,
)
from ._common import open_api
from ._interrupt import CtrlC, wait_interruptibly
from ._output import SavedFile, failure_document, print_json, result_document
from ._progress import ProgressReporter, RunProgress, describe_counts, labels_for, make_renderer

if TYPE_CHECKING:
    from .._client import ComfyApi

__all__ = ["cmd_run", "read_workflow_file", "parse_sets", "prepare_workflow", "prepare_out_dir",
           "save_outputs", "run_and_report"]

#: After Ctrl-C, how long to wait for the server to confirm the cancellation.
_CANCEL_GRACE = 5.0


def read_workflow_file(path: str) -> PreparedWorkflow:
    """The workflow in ``path`` (JSON, a ``/prompt`` request body, or a ComfyUI PNG), read
    and checked; :class:`UsageError` when it is missing, not JSON, empty, or not a workflow
    (a bad file is a usage error on the command line: exit code 2, before any connection).
    A UI-format one is checked when it is converted."""
    try:
        prepared = prepare(path)
        if prepared.prompt is not None:
            to_prompt(prepared)  # refuses an empty one
    except errors.WorkflowFormatError as exc:
        raise UsageError(str(exc)) from None
    return prepared


def prepare_out_dir(out: str) -> Path:
    """``--out`` as a directory that exists (created, parents too) and takes new files.

    Checked before anything is submitted, so a prompt never runs only to have its outputs
    lost to an unusable ``--out`` (a file, a path through a file, a read-only place): those
    are a :class:`UsageError` (exit 2) naming ``--out`` and the reason.
    """
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        raise UsageError(f"--out {out}: cannot create it, a part of the path is a file, "
                         "not a directory") from None
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory "
                         f"({exc.strerror or exc})") from None
    try:  # the only reliable test that files can be written (root ignores permission bits)
        with tempfile.TemporaryFile(dir=path, prefix=".comfysync-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write files there ({exc.strerror or exc})") from None
    return path


def parse_sets(items: Sequence[str]) -> Dict[str, Any]:
    """``["3.seed=42", "Positive.text=a cat"]`` → ``{"3.seed": 42, "Positive.text": "a cat"}``."""
    values: Dict[str, Any] = {}
    for item in items:
        path, sep, raw = item.partition("=")
        path = path.strip()
        node, dot, name = path.rpartition(".")
        if not sep or not dot or not node or not name:
            raise UsageError(
                f"--set {item!r}: expected NODE.INPUT=VALUE, e.g. 3.seed=42; quote an item "
                "with spaces as one shell word: --set 'Positive prompt.text=a cat'"
            )
        values[path] = coerce_cli_value(raw)
    return values


def prepare_workflow(api: ComfyApi, data: PreparedWorkflow, sets: Mapping[str, Any],
                     randomize_seeds: bool) -> Workflow:
    """A :class:`Workflow` in API format with the command line's edits applied.

    A UI-format file is converted with the server's node definitions first, so ``--set``
    addresses the same node ids and titles the user sees in the editor.
    """
    wf = Workflow(data, node_defs=api.get_node_defs)
    if sets:
        try:
            wf.set_many(dict(sets))
        except errors.WorkflowFormatError as exc:  # unknown node/title/input: a usage error
            detail = getattr(exc, "detail", str(exc))
            raise UsageError(
                f"--set: {detail} (list a node class's inputs with: comfysync nodes CLASS)"
            ) from None
    if randomize_seeds:
        wf.randomize_seeds()
    return wf


def save_outputs(result: PromptResult, out_dir: Path,
                 saved: Optional[List[SavedFile]] = None) -> List[SavedFile]:
    """Save every output file of ``result`` into ``out_dir`` (created), never overwriting.

    Each saved file is appended to ``saved`` (a new list by default) as soon as it is written,
    so a caller whose save fails half-way still knows which files were saved."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = [] if saved is None else saved
    for f in result.files:
        path = Path(f.save(out_dir))  # a directory: a taken name gets -1, -2…
        saved.append(SavedFile(node_id=f.node_id, filename=f.filename, subfolder=f.subfolder,
                               type=f.type, path=path))
    return saved


def _cancel(job: PromptJob) -> str:
    """Cancel ``job`` on the server; a short phrase saying what happened."""
    try:
        job.cancel()
    except errors.ComfyError as exc:
        return f"could not cancel it on the server ({exc})"
    try:
        job.wait(timeout=_CANCEL_GRACE)
    except errors.PromptTimeoutError:
        return "cancel requested on the server"
    except errors.PromptError:
        return "cancelled on the server"
    return "it had already finished on the server"


def run_and_report(api: ComfyApi, wf: Workflow, *, out_dir: Path, timeout: Optional[float],
                   as_json: bool, progress_mode: str, server: str) -> int:
    """Submit ``wf`` on a connected ``api``, draw progress, save outputs, print the result.
    Shared by ``run`` and ``demo``."""
    state = RunProgress(labels_for(wf.to_dict()))
    reporter = ProgressReporter(state, make_renderer(progress_mode, sys.stderr))
    job: Optional[PromptJob] = None
    try:
        with CtrlC() as ctrl_c:
            # The prompt's own events (id-less previews attributed by the client), subscribed
            # before it is posted: none is missed, no other prompt's event is shown.
            job = api.submit(wf, on_event=reporter)
            result = wait_interruptibly(job, timeout, ctrl_c)
    except KeyboardInterrupt as exc:
        reporter.close()
        what = _cancel(job) if job is not None else "nothing was queued"
        sys.stderr.write(f"\ncomfysync: {interrupt_word(exc)}; {what}\n")
        if as_json:
            print_json(failure_document(exc, prompt_id=job.prompt_id if job else None,
                                        server=server, previews=state.previews))
        return exit_code_for(exc)  # 130 for Ctrl-C, 143 for SIGTERM
    except errors.ComfyError as exc:
        reporter.close()
        if isinstance(exc, errors.PromptTimeoutError) and job is not None:
            exc = errors.PromptTimeoutError(f"{exc}; {_cancel(job)}", prompt_id=job.prompt_id,
                                            timeout=timeout, job=job)
        if as_json and isinstance(exc, (errors.PromptError, errors.PromptValidationError)):
            print_json(failure_document(exc, prompt_id=job.prompt_id if job else None,
                                        server=server, previews=state.previews))
        raise exc from None
    finally:
        reporter.close()
    saved: List[SavedFile] = []
    try:
        save_outputs(result, out_dir, saved)
    except (OSError, ValueError, errors.ComfyError) as exc:
        _report(result, state, saved, server, as_json, save_error=exc)
        raise CommandFailed(f"prompt {result.prompt_id} succeeded, but saving its outputs "
                            f"into {out_dir} failed: {describe_error(exc)}") from exc
    _report(result, state, saved, server, as_json)
    return EXIT_OK


def _report(result: PromptResult, state: RunProgress, saved: Sequence[SavedFile], server: str,
            as_json: bool, save_error: Optional[BaseException] = None) -> None:
    """Print what a prompt that succeeded produced: the ``--json`` document (status
    ``save_failed`` with the ``error`` when saving failed) or the human-readable lines."""
    if as_json:
        document = result_document(
            prompt_id=result.prompt_id, status=result.status, server=server,
            duration=result.duration, saved=saved, text=result.text,
            cached_nodes=list(result.cached_nodes), previews=state.previews)
        if save_error is not None:
            document["status"] = "save_failed"
            document["error"] = {"type": type(save_error).__name__,
                                 "message": describe_error(save_error)}
        print_json(document)
        return
    facts = describe_counts(state)
    took = f" in {result.duration:.2f} s" if result.duration is not None else ""
    extra = f" ({', '.join(facts)})" if facts else ""
    print(f"prompt {result.prompt_id} succeeded{took}{extra}")
    for item in saved:
        print(f"saved {item.path}")
    for node_id, texts in result.text.items():
        for text in texts:
            print(f"text from node {node_id}: {text}")
    if not saved and not result.text and save_error is None:
        print("the prompt produced no output files")


def cmd_run(args: argparse.Namespace) -> int:
    data = read_workflow_file(args.workflow)
    sets = parse_sets(args.sets)
    out_dir = prepare_out_dir(args.out)
    with open_api(args) as api:
        wf = prepare_workflow(api, data, sets, args.randomize_seeds)
        return run_and_report(api, wf, out_dir=out_dir, timeout=args.timeout,
                              as_json=args.json, progress_mode=args.progress,
                              server=api.url)
