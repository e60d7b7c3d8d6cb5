"""samples/celery_app runs as its README says: a real redis-server, FakeComfyUI processes,
``celery -A render worker`` in the sample's folder, then ``python submit.py``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import pytest
from _celery_procs import ROOT, FakeServerProcess, Proc, child_env, python

SAMPLE = ROOT / "samples" / "celery_app"

pytestmark = pytest.mark.slow


def test_sample_project_runs_against_fake_servers(
    redis_url: str,
    start_fake_server: Callable[..., FakeServerProcess],
    tmp_path: Path,
) -> None:
    servers = [start_fake_server(), start_fake_server()]
    env = child_env({"REDIS_URL": redis_url.rsplit("/", 1)[0] + "/4",
                     "COMFYSYNC_SERVERS": ",".join(s.url for s in servers)})
    worker = Proc("sample worker",
                  python("-m", "celery", "-A", "render", "worker", "--concurrency", "2",
                         "--hostname", "sample@comfysync-test", "--without-gossip",
                         "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"),
                  ready=r"sample@comfysync-test ready\.", env=env, cwd=SAMPLE)
    try:
        worker.wait_ready(30)
        out = subprocess.run(python("submit.py", str(tmp_path / "renders")), cwd=SAMPLE,
                             env=env, capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stdout + out.stderr + worker.output()
    finally:
        worker.stop()
    lines = out.stdout.splitlines()
    done = sorted(line for line in lines if ": success on " in line)
    assert len(done) == 4, out.stdout
    for seed, line in zip((1, 2, 3, 4), done):
        assert line.startswith(f"seed {seed}: success on http://127.0.0.1:")
        assert f"-> 'render {seed}', saved " in line and "/celery_app_0000" in line
    assert any("%" in line and ": node 2 " in line for line in lines), "PROGRESS was shown"
    assert len(list((tmp_path / "renders").glob("*/celery_app*.png"))) == 4
    variants = [line for line in lines if line.startswith("variant: ")]
    assert len(variants) == 2 and all("/view?" in line for line in variants)
    assert sum(sum(s.executions().values()) for s in servers) == 6
    assert "closing the comfysync client of process" in worker.output(last=100000)
