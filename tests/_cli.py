"""Running the ``comfysync`` command in-process, for the CLI tests of every suite."""

from __future__ import annotations

from typing import Tuple

import pytest

from comfysync import cli


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    """``comfysync *argv`` in this process: exit code, stdout, stderr."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
