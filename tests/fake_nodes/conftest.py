"""Fixtures of the node tests: a recording context bound for the test, the built-in
registry seeing its folders, and a node runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from fake_node_support import NodeRunner, RecordingContext

from comfysync.testing._context import bind_context, unbind_context
from comfysync.testing._nodes import NodeRegistry, default_registry


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[RecordingContext]:
    context = RecordingContext(tmp_path)
    token = bind_context(context)
    try:
        yield context
    finally:
        unbind_context(token)


@pytest.fixture
def registry(ctx: RecordingContext) -> NodeRegistry:
    """The built-in nodes, seeing the context's folders."""
    return default_registry(
        input_dir=ctx.input_dir, output_dir=ctx.output_dir, temp_dir=ctx.temp_dir
    )


@pytest.fixture
def run_node(registry: NodeRegistry) -> NodeRunner:
    """``run_node("EmptyImage", width=8, ...)``: call the node's FUNCTION on a new instance."""

    def run(class_type: str, **inputs: Any) -> Any:
        cls: Any = registry.get(class_type)
        assert cls is not None, class_type
        node = cls()
        return getattr(node, cls.FUNCTION)(**inputs)

    return run
