"""In-process tests of the command line's pure parts: parsing, exit codes, --json documents,
file naming, --set parsing, event filtering, credentials handling."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any, List

import pytest

from comfysync import cli, errors
from comfysync._rest.models import FileRef
from comfysync.cli._common import client_options, open_api
from comfysync.cli._output import (
    SavedFile,
    failure_document,
    result_document,
    to_jsonable,
)
from comfysync.cli._run import parse_sets, read_workflow_file


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


# -- parser ------------------------------------------------------------------------------------


def test_run_arguments() -> None:
    args = parse("run", "wf.json", "--set", "3.seed=1", "--set", "Positive.text=a cat",
                 "--randomize-seeds", "--out", "o", "--timeout", "2.5", "--json")
    assert args.command == "run" and args.workflow == "wf.json"
    assert args.sets == ["3.seed=1", "Positive.text=a cat"]
    assert args.randomize_seeds and args.json and args.out == "o" and args.timeout == 2.5
    assert args.progress == "auto"


def test_run_defaults() -> None:
    args = parse("run", "wf.json")
    assert args.out == cli.DEFAULT_OUT and args.timeout is None and args.sets == []
    assert not args.json and not args.randomize_seeds and args.server is None


@pytest.mark.parametrize("argv", [
    ["--server", "h:1", "--json", "queue"],  # before the command
    ["queue", "--server", "h:1", "--json"],  # after it
])
def test_common_options_before_or_after_the_command(argv: List[str]) -> None:
    args = parse(*argv)
    assert args.server == "h:1" and args.json is True


def test_sub_command_defaults_do_not_overwrite_global_options() -> None:
    args = parse("--token", "t", "--insecure", "stats")
    assert args.token == "t" and args.insecure is True


@pytest.mark.parametrize("argv", [
    [], ["run"], ["run", "wf.json", "--timeout", "0"], ["run", "wf.json", "--timeout", "x"],
    ["history", "--max", "-1"], ["bogus"], ["upload"], ["run", "wf.json", "--progress", "x"],
])
def test_usage_errors_exit_2(argv: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "comfysync: error:" in err and "Traceback" not in err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    from comfysync import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"comfysync {__version__}"
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--randomize-seeds" in out and "NODE.INPUT=VALUE" in out


def test_missing_workflow_file_is_one_line_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "nope.json")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("comfysync: error: workflow file not found")


def test_resolve_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFYUI_URL", raising=False)
    assert cli.resolve_server(parse("queue")) == "127.0.0.1:8188"
    monkeypatch.setenv("COMFYUI_URL", "http://env:1")
    assert cli.resolve_server(parse("queue")) == "http://env:1"
    assert cli.resolve_server(parse("queue", "--server", "x:2")) == "x:2"


# -- exit codes and messages ---------------------------------------------------------------------


@pytest.mark.parametrize("exc,code", [
    (KeyboardInterrupt(), 130),
    (cli.UsageError("x"), 2),
    (errors.ComfyConnectionError("refused"), 3),
    (errors.ComfyTimeoutError("slow"), 3),
    (errors.PromptTimeoutError("late", prompt_id="p"), 1),  # a prompt failure, not a connect one
    (errors.PromptExecutionError(prompt_id="p", node_id="1", node_type="X"), 1),
    (errors.PromptLostError("gone", prompt_id="p"), 1),
    (errors.ComfyHTTPError(500, "http://h/x"), 1),
    (errors.WorkflowFormatError("ui"), 1),
    (cli.CommandFailed("prompt p succeeded, but saving its outputs failed"), 1),
])
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert cli.exit_code_for(exc) == code


def test_describe_error() -> None:
    assert cli.describe_error(errors.ComfyConnectionError("no route")).startswith(
        "cannot connect to the server: no route")
    assert cli.describe_error(FileNotFoundError(2, "No such file", "x.png")) == \
        "No such file: x.png"


# -- --json documents ----------------------------------------------------------------------------


def test_result_document_shape(tmp_path: Path) -> None:
    saved = [SavedFile(node_id="9", filename="a.png", subfolder="s", type="output",
                       path=tmp_path / "a.png")]
    doc = result_document(prompt_id="p", status="success", server="http://h:1",
                          duration=1.23456, saved=saved, text={"5": ["hi"]},
                          cached_nodes=["1"], previews=3)
    assert doc == {
        "prompt_id": "p", "status": "success", "server": "http://h:1", "duration": 1.235,
        "files": [{"node_id": "9", "filename": "a.png", "subfolder": "s", "type": "output",
                   "path": str(tmp_path / "a.png")}],
        "text": {"5": ["hi"]}, "cached_nodes": ["1"], "previews": 3,
    }
    json.dumps(doc)


def test_failure_documents() -> None:
    exc = errors.PromptExecutionError(prompt_id="p", node_id="2", node_type="ProbeFail",
                                      exception_type="RuntimeError", exception_message="boom",
                                      traceback=["line\n"])
    doc = failure_document(exc, prompt_id="p", server="s", previews=1)
    assert doc["status"] == "error" and doc["prompt_id"] == "p"
    assert doc["error"]["node_id"] == "2" and doc["error"]["exception_message"] == "boom"
    assert failure_document(KeyboardInterrupt(), prompt_id="p", server="s")["status"] == \
        "cancelled"
    bad = errors.PromptValidationError({"type": "prompt_outputs_failed_validation",
                                        "message": "bad"}, {"3": {"errors": []}})
    vdoc = failure_document(bad, prompt_id=None, server="s")
    assert vdoc["status"] == "rejected" and vdoc["error"]["node_errors"] == {"3": {"errors": []}}
    assert failure_document(errors.PromptTimeoutError("t", prompt_id="p"), prompt_id="p",
                            server="s")["status"] == "timeout"
    json.dumps([doc, vdoc])


def test_to_jsonable_models_drop_raw() -> None:
    ref = FileRef(filename="a.png", subfolder="", type="input")
    assert to_jsonable(ref) == {"filename": "a.png", "subfolder": "", "type": "input"}
    assert to_jsonable({"b": b"abc", "p": Path("x"), "t": (1, 2)}) == {
        "b": {"bytes": 3}, "p": "x", "t": [1, 2]}


# -- run helpers ---------------------------------------------------------------------------------


def test_parse_sets() -> None:
    assert parse_sets(["3.seed=42", "Positive prompt.text=a cat, 4k", "3.cfg=7.5",
                       "9.flag=true", "1.name=\"42\"", "My.Node.title.x=="]) == {
        "3.seed": 42, "Positive prompt.text": "a cat, 4k", "3.cfg": 7.5, "9.flag": True,
        "1.name": "42", "My.Node.title.x": "="}


@pytest.mark.parametrize("bad", ["seed=1", "3.seed", ".seed=1", "3.=1"])
def test_parse_sets_rejects_malformed(bad: str) -> None:
    with pytest.raises(cli.UsageError, match="NODE.INPUT=VALUE"):
        parse_sets([bad])


def test_read_workflow_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(cli.UsageError, match="not valid JSON"):
        read_workflow_file(str(bad))
    arr = tmp_path / "arr.json"
    arr.write_text("[1]", encoding="utf-8")
    with pytest.raises(cli.UsageError, match="JSON object"):
        read_workflow_file(str(arr))
    with pytest.raises(cli.UsageError, match="workflow file not found"):
        read_workflow_file(str(tmp_path / "missing.json"))
    good = tmp_path / "ok.json"
    good.write_text('{"1": {"class_type": "X", "inputs": {}}}', encoding="utf-8")
    assert read_workflow_file(str(good)).prompt == {"1": {"class_type": "X", "inputs": {}}}


@pytest.mark.parametrize("data, words", [
    ({}, "has no nodes"),
    ({"1": 3}, "expected an object with class_type"),
    ({"1": {"inputs": {}}}, "is missing the class_type property"),
    ({"1": {"class_type": 7, "inputs": {}}}, "class_type must be a string"),
    ({"1": {"class_type": "X", "inputs": [1]}}, "inputs must be an object"),
])
def test_invalid_workflow_file_is_a_usage_error_before_connecting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        data: Any, words: str) -> None:
    from comfysync import ComfyApi

    def no_client(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a client was created for an invalid workflow file")

    monkeypatch.setattr(ComfyApi, "__init__", no_client)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(cli.UsageError, match=words):
        read_workflow_file(str(path))
    assert cli.main(["run", str(path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(path) in err


def test_demo_takes_no_server_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--server", "--user", "--password", "--token", "--insecure", "--ca-bundle"):
        assert option not in out
    assert "--json" in out and "--out" in out
    assert cli.main(["demo", "--server", "h:1"]) == cli.EXIT_USAGE  # argparse refuses it
    assert "unrecognized arguments: --server" in capsys.readouterr().err
    for argv in (["--server", "h:1", "demo"], ["--token", "t", "demo"],
                 ["--insecure", "demo"]):
        assert cli.main(argv) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("comfysync: error: demo runs its own embedded server")
        assert argv[0] in err and err.count("\n") == 1


def test_malformed_comfyui_url_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COMFYUI_URL", "ftp://gpu:8188")
    assert cli.main(["queue"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("comfysync: error: $COMFYUI_URL: unsupported URL scheme 'ftp'")
    assert cli.main(["queue", "--server", "gpu:x"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("comfysync: error: --server: invalid server URL")


# -- credentials ---------------------------------------------------------------------------------


def test_client_options_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_TOKEN", "tok")
    monkeypatch.setenv("COMFYUI_PASSWORD", "pw")
    assert client_options(parse("queue")) == {"auth": None, "token": "tok", "verify": True}
    opts = client_options(parse("queue", "--user", "ann"))
    assert opts["auth"] == ("ann", "pw") and opts["token"] is None
    assert client_options(parse("queue", "--insecure"))["verify"] is False


def test_client_options_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("COMFYUI_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", None)
    with pytest.raises(cli.UsageError, match="password"):
        client_options(parse("queue", "--user", "ann"))
    with pytest.raises(cli.UsageError, match="--user"):
        client_options(parse("queue", "--password", "x"))
    with pytest.raises(cli.UsageError):
        client_options(parse("queue", "--insecure", "--ca-bundle", "x"))
    with pytest.raises(cli.UsageError, match="no such file"):
        client_options(parse("queue", "--ca-bundle", str(tmp_path / "ca.pem")))
    ca = tmp_path / "ca.pem"
    ca.write_text("-", encoding="utf-8")
    assert client_options(parse("queue", "--ca-bundle", str(ca)))["verify"] == str(ca)


def test_explicit_credentials_beat_the_token_in_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_TOKEN", "env-token")
    monkeypatch.delenv("COMFYUI_URL", raising=False)
    opts = client_options(parse("queue", "--server", "http://ann:pw@gpu:8188"))
    assert opts["token"] is None and opts["auth"] is None  # the URL's own credentials apply
    api = open_api(parse("queue", "--server", "http://ann:pw@gpu:8188"))
    try:
        assert api._transport.auth_kind == "basic"
    finally:
        api.close()
    monkeypatch.setenv("COMFYUI_URL", "http://ann:pw@gpu:8188")  # the same from $COMFYUI_URL
    assert client_options(parse("queue"))["token"] is None
    monkeypatch.setenv("COMFYUI_PASSWORD", "pw2")
    opts = client_options(parse("queue", "--user", "bob"))  # --user: as before
    assert opts["auth"] == ("bob", "pw2") and opts["token"] is None


def test_explicit_credentials_twice_name_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFYUI_TOKEN", raising=False)
    monkeypatch.delenv("COMFYUI_URL", raising=False)
    with pytest.raises(cli.UsageError) as info:
        client_options(parse("queue", "--server", "http://ann:pw@gpu", "--token", "t"))
    message = str(info.value)
    assert "--server" in message and "--token" in message and "pw" not in message
    assert "auth=" not in message
    monkeypatch.setenv("COMFYUI_URL", "http://ann:pw@gpu")
    with pytest.raises(cli.UsageError, match=r"\$COMFYUI_URL.*--token"):
        client_options(parse("queue", "--token", "t"))
    with pytest.raises(cli.UsageError, match="--user and --token are both given: use one of them"):
        client_options(parse("queue", "--user", "ann", "--password", "x", "--token", "t"))


def test_cli_logging_is_scoped(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    logger = logging.getLogger("comfysync")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with cli._cli_logging(debug=False):
        logging.getLogger("comfysync.listener").warning("socket dropped; reconnecting")
        logging.getLogger("comfysync.listener").debug("hidden")
    assert capsys.readouterr().err == "comfysync: WARNING: socket dropped; reconnecting\n"
    with cli._cli_logging(debug=True):
        logging.getLogger("comfysync.listener").debug("shown")
    assert capsys.readouterr().err == "comfysync: DEBUG: comfysync.listener: shown\n"
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_ctrl_c_is_a_flag_inside_the_guard() -> None:
    import signal

    from comfysync.cli._interrupt import CtrlC

    before = signal.getsignal(signal.SIGINT)
    with CtrlC() as ctrl_c:
        signal.raise_signal(signal.SIGINT)  # first press: recorded, nothing raised
        assert ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # second press: at once
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_guard_is_inert_off_the_main_thread() -> None:
    from comfysync.cli._interrupt import CtrlC

    seen: List[bool] = []

    def worker() -> None:
        with CtrlC() as ctrl_c:
            seen.append(ctrl_c.pressed)

    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    assert seen == [False]
