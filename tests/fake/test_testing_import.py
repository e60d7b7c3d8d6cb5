"""``comfysync.testing`` without its extra installed: one ImportError that says what to install.

Simulated in a subprocess with ``sys.modules[name] = None`` (which makes ``import name`` fail
like a missing package), so the test process keeps its own aiohttp and Pillow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.modules[{module!r}] = None
try:
    from comfysync.testing import FakeComfyUI
except ImportError as exc:
    print(type(exc).__name__)
    print(exc.name)
    print(exc)
else:
    print("imported")
"""


def run(module: str) -> str:
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_missing_aiohttp_names_the_install_command() -> None:
    kind, name, message = run("aiohttp").splitlines()[:3]
    assert kind == "ImportError"  # not the bare ModuleNotFoundError
    assert name == "aiohttp"  # kept: `comfysync demo` names the missing module
    assert 'pip install "comfysync[testing]"' in message and "aiohttp" in message


def test_pillow_is_not_needed_to_import_it() -> None:
    assert run("PIL") == "imported\n"  # Pillow is imported only when an image is made
