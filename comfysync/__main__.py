"""``python -m comfysync`` — the same program as the ``comfysync`` command."""

from __future__ import annotations

from .cli import entry

if __name__ == "__main__":
    entry()
