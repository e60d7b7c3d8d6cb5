"""Reading workflow files and recognising the UI format: one implementation shared by the
REST layer, the workflow layer and ``comfysync.utils``."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfysync import WorkflowFormatError, utils
from comfysync._workflow.format import is_ui_format, read_json_file


def test_ui_format_is_told_apart_from_api_format() -> None:
    assert is_ui_format({"nodes": [], "links": []})
    assert is_ui_format({"nodes": [{"id": 1}]})
    assert not is_ui_format({"3": {"class_type": "KSampler", "inputs": {}}})
    assert not is_ui_format({"nodes": {"class_type": "X", "inputs": {}}})  # a node named "nodes"
    assert not is_ui_format([1, 2])


def test_read_json_file_tolerates_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"1": {"class_type": "X", "inputs": {}}}')
    assert read_json_file(path) == {"1": {"class_type": "X", "inputs": {}}}
    assert utils.read_json(str(path)) == read_json_file(path)


@pytest.mark.parametrize(
    "content, words",
    [(None, "not found"), (b"{not json", "not valid JSON"), (b"\xff\xfe\x00", "not UTF-8")],
)
def test_read_json_file_failures_name_the_file(
    tmp_path: Path, content: object, words: str
) -> None:
    path = tmp_path / "broken.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(WorkflowFormatError) as info:
        utils.read_json(path)
    assert words in str(info.value) and "broken.json" in str(info.value)


def test_json_text_passed_as_a_path_gets_a_hint() -> None:
    with pytest.raises(WorkflowFormatError, match=r"json\.loads"):
        read_json_file('{"1": {"class_type": "X", "inputs": {}}}')
