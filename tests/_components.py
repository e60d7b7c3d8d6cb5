"""Real components some tests need (redis-server, a Celery worker, comfy-api-proxy, a Jupyter
kernel): skip with a clear reason where the machine lacks one, fail where it must be there.

``.ci/run`` installs every component and sets ``COMFYSYNC_REQUIRE_COMPONENTS=1``, so CI never
passes by skipping: a missing component is a failure there.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn, Optional

import pytest

REQUIRE_ENV = "COMFYSYNC_REQUIRE_COMPONENTS"


def components_required() -> bool:
    """True where a missing component must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def missing(component: str, reason: str) -> NoReturn:
    """Skip (or, under ``COMFYSYNC_REQUIRE_COMPONENTS=1``, fail) because ``component`` is
    not available here; ``reason`` says what is missing and how to install it."""
    message = f"{component} is not available: {reason}"
    if components_required():
        pytest.fail(f"{message} ({REQUIRE_ENV} is set, so this is a failure)", pytrace=False)
    pytest.skip(message)


def require_executable(name: str, install_hint: str) -> str:
    """The path of executable ``name``, or skip/fail with ``install_hint``."""
    path: Optional[str] = shutil.which(name)
    if path is None:
        missing(name, f"no `{name}` on PATH; {install_hint}")
    return path


def require_module(module: str, install_hint: str) -> None:
    """Import ``module`` or skip/fail with ``install_hint``."""
    try:
        __import__(module)
    except ImportError as exc:
        missing(module, f"cannot import {module} ({exc}); {install_hint}")
