"""``comfysync run`` against a Comfy API v2 deployment (comfy-api-proxy): same command, same
output; the key comes from ``$COMFY_API_KEY``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from comfysync.testing import FakeComfyUI

from .conftest import Proxy
from .test_api_proxy import image_wf

KEY = "cli-" + "k" * 32


def test_cli_run_through_a_v2_deployment_with_a_key(tmp_path: Path,
                                                    upstream: FakeComfyUI) -> None:
    proxy = Proxy(upstream.url, token=KEY)
    try:
        workflow = tmp_path / "wf.json"
        workflow.write_text(json.dumps(image_wf(300, steps=3, delay_ms=100)))
        env = dict(os.environ, COMFY_API_KEY=KEY, PYTHONPATH=os.getcwd())
        done = subprocess.run(
            [sys.executable, "-m", "comfysync", "run", str(workflow), "--server", proxy.url,
             "--out", str(tmp_path / "out"), "--set", "2.seed=301", "--json"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["status"] == "success"
        [saved] = report["files"]
        assert Path(saved["path"]).read_bytes().startswith(b"\x89PNG")
        assert "WARNING" not in done.stderr and KEY not in done.stderr + done.stdout
        refused = subprocess.run(
            [sys.executable, "-m", "comfysync", "run", str(workflow), "--server", proxy.url],
            capture_output=True, text=True, timeout=120,
            env=dict(env, COMFY_API_KEY="wrong-key"),
        )
        assert refused.returncode != 0 and "COMFY_API_KEY" in refused.stderr
        assert "wrong-key" not in refused.stderr
    finally:
        proxy.stop()
