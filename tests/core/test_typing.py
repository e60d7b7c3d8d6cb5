"""What users' own code sees under ``mypy --strict``: a user script using the client the
documented ways must type-check, and a wrong use of the same types must not (so the check
is real, not comfysync's types collapsing to ``Any``). Skipped only without mypy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("mypy")
pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]

USER_SCRIPT = '''
from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Dict, Optional, Tuple

from comfysync import (
    ComfyApi, ComfyClient, OutputFile, PromptJob, PromptResult, SeedPromptJob, create_client,
    events,
)
from comfysync.errors import PromptInterruptedError, PromptTimeoutError


def seed_style(url: str, wf: Dict[str, Any]) -> str:
    with create_client(url) as client:  # __enter__ keeps the ComfyClient type
        job = client.submit_workflow(wf)
        result: PromptResult = job.future.result(timeout=60)  # a Future, not Optional
        deferred: SeedPromptJob = client.submit_workflow(wf, return_future=False)
        maybe: Optional[Future[PromptResult]] = deferred.future
        assert maybe is None
        first: OutputFile = result.output_images[0]  # the seed's name keeps the type
        size: Tuple[int, int] = first.image.size  # a PIL image
        return result.prompt_id + client.fetch_results(deferred, timeout=60).prompt_id


def api_style(url: str, wf: Dict[str, Any]) -> int:
    with ComfyApi(url) as api:
        job: PromptJob = api.submit(wf)
        future: Future[PromptResult] = job.future
        future.add_done_callback(lambda f: print(f.result().prompt_id))
        status = api.wait_for(events.Status, lambda ev: ev.queue_remaining == 0, timeout=5)
        api.on(events.Progress, lambda ev: print(ev.value / ev.max))
        try:
            api.run_workflow(wf, timeout=10)
        except PromptTimeoutError as exc:
            if exc.job is not None:
                exc.job.cancel()
        except PromptInterruptedError as exc:
            print(exc.cancelled)
        return status.queue_remaining


class MyApi(ComfyApi):
    def hello(self) -> str:
        return "hello"


def subclass(url: str) -> str:
    with MyApi(url) as api:  # the subclass, not ComfyApi
        return api.hello() + api.connect().hello()


def compat_subclass(url: str) -> ComfyClient:
    with create_client(url) as client:
        return client
'''

WRONG_SCRIPT = '''
from __future__ import annotations

from comfysync import ComfyApi, PromptResult, events


def wrong(url: str) -> str:
    with ComfyApi(url) as api:
        return api.wait_for(events.Status, timeout=5)


def wrong_seed_name(result: PromptResult) -> int:
    return result.output_images[0]
'''


def run_mypy(tmp_path: Path, source: str) -> List[str]:
    """mypy --strict on ``source`` (comfysync resolved from this repository); its error
    lines about the script."""
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, MYPYPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--follow-imports=silent", "--python-version", "3.10",
         "--config-file", os.devnull, "--cache-dir", str(tmp_path / "cache"), str(script)],
        cwd=str(REPO), env=env, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "user_script.py" in line]


def test_user_code_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    assert run_mypy(tmp_path, USER_SCRIPT) == []


def test_mypy_catches_misuse_of_the_same_types(tmp_path: Path) -> None:
    errors = run_mypy(tmp_path, WRONG_SCRIPT)
    assert len(errors) == 2, errors
    assert '"Status"' in errors[0] and '"str"' in errors[0], errors
    assert '"OutputFile"' in errors[1] and '"int"' in errors[1], errors  # not Any
