"""The ``comfysync`` command (also ``python -m comfysync``).

This module owns the argument parser, the mapping of errors to exit codes, the one-line
error messages and the command's logging; the commands themselves live in ``_commands``
(one REST call each), ``_run`` (``run``, with ``_progress`` drawing progress,
``_interrupt`` handling Ctrl-C and ``_output`` the ``--json`` documents) and
``_demo`` (``demo``).

Exit codes: 0 ok, 1 the prompt (or the server) said no, 2 usage, 3 cannot connect,
130 interrupted with Ctrl-C, 143 terminated by SIGTERM (``docker stop``, ``timeout``, a CI
cancelling a job); in both cases the prompt is cancelled on the server first.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple

from .. import errors
from .._version import __version__

__all__ = ["main", "build_parser", "UsageError", "CommandFailed", "EXIT_OK", "EXIT_FAILED",
           "EXIT_USAGE", "EXIT_CONNECT", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "Terminated",
           "DEFAULT_SERVER", "DEFAULT_OUT"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM, what a shell reports for a process SIGTERM ended.
EXIT_TERMINATED = 143

DEFAULT_SERVER = "127.0.0.1:8188"
#: Where ``run``, ``download`` and ``demo`` save files unless ``--out`` says otherwise: a
#: directory of its own, so a run never scatters files over the current directory.
DEFAULT_OUT = "comfysync-out"


class UsageError(Exception):
    """A mistake in how the command was called (exit 2), found after argument parsing:
    a bad ``--set``, a workflow file that does not exist or is not JSON, …"""


class CommandFailed(Exception):
    """A command failed after part of its work was done (exit 1), with a message that says
    what did happen: e.g. a prompt that ran but whose outputs could not be saved."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the running prompt is cancelled on the server) but
    ending with exit code 143. A ``KeyboardInterrupt``, so every place that cleans up after
    Ctrl-C cleans up after it too."""

    def __str__(self) -> str:
        return "terminated (SIGTERM)"


def interrupt_word(exc: BaseException) -> str:
    """``"terminated"`` for SIGTERM, ``"interrupted"`` for Ctrl-C (in messages)."""
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


class _Parser(argparse.ArgumentParser):
    """argparse that prefixes errors with the program name the same way everywhere."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"comfysync: error: {message}\n")


#: The connection options (``dest`` names) and their defaults: ``demo``, which runs its own
#: embedded server, neither offers nor accepts them.
SERVER_OPTIONS: Dict[str, object] = {"server": None, "user": None, "password": None,
                                     "token": None, "insecure": False, "ca_bundle": None}


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool,
                server_options: bool = True) -> None:
    """Connection and output options, accepted both before and after the command name.

    The copies on the sub-commands use ``SUPPRESS`` defaults, so an option given before the
    command is not overwritten by the sub-command's default. ``server_options`` false leaves
    out the connection options (for ``demo``).
    """

    def d(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("server and output options" if server_options
                                  else "output options")
    if server_options:
        _add_server_options(g, d)
    g.add_argument("--json", action="store_true", default=d(False),
                   help="print a machine-readable JSON result on stdout")
    g.add_argument("--debug", action="store_true", default=d(False),
                   help="show tracebacks and debug logging on errors")


def _add_server_options(g: Any, d: Callable[[object], object]) -> None:
    g.add_argument("--server", metavar="URL", default=d(None),
                   help="ComfyUI address: host, host:port or http(s)://host[:port][/prefix] "
                        f"(default: $COMFYUI_URL, else {DEFAULT_SERVER})")
    g.add_argument("--user", metavar="NAME", default=d(None),
                   help="HTTP Basic user; the password comes from --password or "
                        "$COMFYUI_PASSWORD (asked for on a terminal otherwise)")
    g.add_argument("--password", metavar="PW", default=d(None),
                   help="HTTP Basic password (prefer $COMFYUI_PASSWORD: arguments are "
                        "visible to other users of the machine)")
    g.add_argument("--token", metavar="TOKEN", default=d(None),
                   help="bearer token (default: $COMFYUI_TOKEN)")
    g.add_argument("--insecure", action="store_true", default=d(False),
                   help="do not verify the server's TLS certificate")
    g.add_argument("--ca-bundle", metavar="PATH", default=d(None),
                   help="verify TLS against this CA bundle instead of the system's")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; ``comfysync <command> --help`` documents each command."""
    from ._progress import PROGRESS_MODES

    parser = _Parser(
        prog="comfysync",
        description="Run ComfyUI workflows and query a ComfyUI server from the shell.",
        epilog="Start with `comfysync demo` (no server or GPU needed). "
               "Exit codes: 0 ok, 1 prompt failed, 2 usage, 3 cannot connect, 130 Ctrl-C.",
    )
    parser.add_argument("--version", action="version", version=f"comfysync {__version__}")
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_text: str, server_options: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        _add_common(p, suppress=True, server_options=server_options)
        return p

    run = add("run", "run a workflow (API or UI format), show progress, save its outputs")
    run.add_argument("workflow", metavar="WORKFLOW.json", help="workflow file (API or UI format)")
    run.add_argument("--set", dest="sets", metavar="NODE.INPUT=VALUE", action="append",
                     default=[], help="set an input before running; NODE is a node id or "
                     "title; VALUE is parsed as JSON when it can be (42, 1.5, true, "
                     '"text"), else taken as text; repeatable')
    run.add_argument("--randomize-seeds", action="store_true",
                     help="give every seed/noise_seed input a new random value")
    run.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                     help=f"directory for the output files (default: ./{DEFAULT_OUT})")
    run.add_argument("--timeout", metavar="S", type=_positive_float, default=None,
                     help="give up after S seconds, cancelling the prompt (exit 1)")
    run.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                     help="progress display on stderr (default: auto = tqdm or plain text "
                          "on a terminal, nothing otherwise)")

    add("queue", "show the running and pending prompts")
    hist = add("history", "show finished prompts, newest first")
    hist.add_argument("--max", dest="max_items", metavar="N", type=_positive_int, default=20,
                      help="at most N entries (default: 20)")
    add("stats", "show the server's system stats (versions, devices, memory)")
    nodes = add("nodes", "list the node classes, or describe one")
    nodes.add_argument("node_class", metavar="CLASS", nargs="?", help="node class to describe")
    intr = add("interrupt", "interrupt the running prompt (only PROMPT_ID, when given)")
    intr.add_argument("prompt_id", metavar="PROMPT_ID", nargs="?")

    up = add("upload", "upload an image (or a mask) into the server's input folder")
    up.add_argument("file", metavar="FILE")
    up.add_argument("--subfolder", default="", metavar="S", help="subfolder on the server")
    up.add_argument("--type", dest="file_type", choices=("input", "temp", "output"),
                    default="input", help="target folder type (default: input)")
    up.add_argument("--overwrite", action="store_true",
                    help="replace a file of the same name instead of renaming")
    up.add_argument("--mask", action="store_true",
                    help="upload FILE as the alpha mask of --original-ref")
    up.add_argument("--original-ref", metavar="[SUBFOLDER/]NAME",
                    help="with --mask: the image the mask applies to")
    up.add_argument("--original-type", choices=("input", "temp", "output"), default="output",
                    help="with --mask: folder type of the original (default: output)")

    down = add("download", "download a file the server holds (an output by default)")
    down.add_argument("filename", metavar="FILENAME")
    down.add_argument("--subfolder", default="", metavar="S")
    down.add_argument("--type", dest="file_type", choices=("input", "temp", "output"),
                      default="output", help="folder type (default: output)")
    down.add_argument("--out", metavar="PATH", default=DEFAULT_OUT,
                      help="target directory (a taken name gets -1, -2…), or a file path "
                           f"with an extension such as x.png (default: ./{DEFAULT_OUT})")

    demo = add("demo", "run the default text-to-image workflow on an embedded FakeComfyUI "
                       "(takes no server options: it starts its own server)",
               server_options=False)
    demo.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                      help=f"where to save the image (default: ./{DEFAULT_OUT})")
    demo.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                      help="progress display on stderr (default: auto)")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _error(message: str) -> None:
    """One line on stderr, whatever the message contains."""
    line = " ".join(str(message).split()) or "unknown error"
    sys.stderr.write(f"comfysync: error: {line}\n")
    sys.stderr.flush()


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, errors.PromptError):  # before ComfyTimeoutError: PromptTimeoutError
        return EXIT_FAILED
    if isinstance(exc, (errors.ComfyConnectionError, errors.ComfyTimeoutError)):
        return EXIT_CONNECT
    return EXIT_FAILED


def describe_error(exc: BaseException) -> str:
    """The text after ``comfysync: error:`` for ``exc`` (never a credential: the library's
    messages carry only redacted URLs)."""
    if isinstance(exc, errors.ComfyConnectionError):
        return f"cannot connect to the server: {exc}"
    if isinstance(exc, errors.PromptValidationError):
        return f"the server rejected the workflow: {exc}"
    if isinstance(exc, OSError) and not isinstance(exc, errors.ComfyError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


#: command → (module, function): a command imports only what it needs, so ``--help`` and
#: usage errors stay fast and work even without the optional extras.
_COMMANDS: Dict[str, Tuple[str, str]] = {
    "run": ("_run", "cmd_run"),
    "queue": ("_commands", "cmd_queue"),
    "history": ("_commands", "cmd_history"),
    "stats": ("_commands", "cmd_stats"),
    "nodes": ("_commands", "cmd_nodes"),
    "interrupt": ("_commands", "cmd_interrupt"),
    "upload": ("_commands", "cmd_upload"),
    "download": ("_commands", "cmd_download"),
    "demo": ("_demo", "cmd_demo"),
}


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    module_name, function = _COMMANDS[name]
    module = importlib.import_module(f"{__package__}.{module_name}")
    found: Callable[[argparse.Namespace], int] = getattr(module, function)
    return found


def resolve_server(args: argparse.Namespace) -> str:
    """``--server``, else ``$COMFYUI_URL``, else 127.0.0.1:8188."""
    return str(args.server or os.environ.get("COMFYUI_URL") or DEFAULT_SERVER)


def server_source(args: argparse.Namespace) -> str:
    """Where :func:`resolve_server` found the address, for messages: ``"--server"``,
    ``"$COMFYUI_URL"`` or ``"the default server"``."""
    if args.server:
        return "--server"
    return "$COMFYUI_URL" if os.environ.get("COMFYUI_URL") else "the default server"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def _cli_logging(debug: bool) -> Iterator[None]:
    """While a command runs: the library's warnings (reconnects, fallbacks) as
    ``comfysync: WARNING: …`` lines on stderr, everything down to DEBUG with ``--debug``.
    Only the ``comfysync`` logger is touched, and it is restored afterwards (``main`` may run
    inside another program or a test session)."""
    logger = logging.getLogger("comfysync")
    saved = (logger.level, logger.propagate)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(
        "comfysync: %(levelname)s: %(name)s: %(message)s" if debug
        else "comfysync: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _raise_terminated(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` in the main thread instead of
    killing the process on the spot: the command cleans up as after Ctrl-C (``run`` cancels
    its prompt) and exits 143. The previous handler is restored afterwards; off the main
    thread (``main`` called from a worker) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def server_traceback(exc: errors.PromptExecutionError) -> str:
    """The failing node's traceback as the server sent it, laid out like Python's own
    (header, frames, ``Type: message``); what ``--debug`` prints for a node that raised."""
    where = f"node {exc.node_id}" + (f" ({exc.node_type})" if exc.node_type else "")
    frames = exc.traceback or "  (the server sent no traceback)\n"
    if not frames.endswith("\n"):
        frames += "\n"
    what = exc.exception_type or "error"
    message = f"{what}: {exc.exception_message}" if exc.exception_message else what
    return (f"Server-side traceback of {where} in prompt {exc.prompt_id} "
            f"(most recent call last):\n{frames}{message}\n")


def _print_debug_traceback(exc: BaseException) -> None:
    """``--debug``: the traceback that explains ``exc``. For a node that raised on the
    server that is the server's (the client's own stack only shows where it waited)."""
    if isinstance(exc, errors.PromptExecutionError):
        sys.stderr.write(server_traceback(exc))
    else:
        traceback.print_exc()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    debug = bool(args.debug)
    with _cli_logging(debug), _sigterm_as_interrupt():
        try:
            return _command(args.command)(args)
        except KeyboardInterrupt as exc:
            sys.stderr.write(f"\ncomfysync: {interrupt_word(exc)}\n")
            return exit_code_for(exc)
        except (errors.ComfyError, UsageError, CommandFailed, OSError) as exc:
            if debug:
                _print_debug_traceback(exc)
            _error(describe_error(exc))
            return exit_code_for(exc)
        except Exception as exc:  # an unexpected failure still gets one line (and --debug)
            if debug:
                traceback.print_exc()
            _error(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
            return EXIT_FAILED


def entry(argv: Optional[List[str]] = None) -> None:
    """``sys.exit(main())`` for ``python -m comfysync``."""
    sys.exit(main(argv))
