"""Progress state and rendering of ``comfysync run``, in-process, into a StringIO."""

from __future__ import annotations

import io
from typing import List

import pytest

from comfysync import events
from comfysync.cli._progress import (
    NullRenderer,
    PlainRenderer,
    ProgressReporter,
    Renderer,
    RunProgress,
    TqdmRenderer,
    describe_counts,
    labels_for,
    make_renderer,
)

WF = {
    "1": {"class_type": "EmptyImage", "inputs": {}, "_meta": {"title": "Canvas"}},
    "2": {"class_type": "KSampler", "inputs": {}},
    "3": {"class_type": "SaveImage", "inputs": {}},
}
P = "prompt-1"


def normal_run() -> List[events.Event]:
    return [
        events.ExecutionStart(prompt_id=P),
        events.ExecutionCached(nodes=("1",), prompt_id=P),
        events.Executing(node="2", prompt_id=P),
        events.Progress(value=1, max=4, node="2", prompt_id=P),
        events.Preview(image=b"x", node_id="2", prompt_id=P),
        events.Progress(value=2, max=4, node="2", prompt_id=P),
        events.Preview(image=b"x", node_id="2", prompt_id=P),
        events.Executing(node="3", prompt_id=P),
        events.Executed(node="3", output={"images": []}, prompt_id=P),
        events.ExecutionSuccess(prompt_id=P),
        events.Executing(node=None, prompt_id=P),
    ]


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_labels_use_titles_then_class() -> None:
    assert labels_for(WF) == {"1": "Canvas", "2": "KSampler", "3": "SaveImage"}


def test_run_progress_follows_a_normal_run() -> None:
    state = RunProgress(labels_for(WF))
    seen = []
    for ev in normal_run():
        state.apply(ev)
        seen.append((state.completed, state.current, state.value, state.max))
    assert seen[1] == (1, None, 0, 0)  # cached node counts as done
    assert seen[3] == (1, "2", 1, 4)
    assert seen[7][:2] == (2, "3")  # KSampler finished when the next node started
    assert state.finished and state.completed == 3
    assert state.previews == 2
    assert state.cached == {"1"}
    assert describe_counts(state) == ["1 cached node", "2 previews"]


def test_run_progress_on_error_does_not_mark_failing_node_done() -> None:
    state = RunProgress(labels_for(WF))
    for ev in [events.Executing(node="1", prompt_id=P), events.Executing(node="2", prompt_id=P),
               events.ExecutionError(node_id="2", node_type="KSampler", prompt_id=P)]:
        state.apply(ev)
    assert state.finished and state.current is None
    assert state.done == {"1"}


def test_irrelevant_events_change_nothing() -> None:
    state = RunProgress(labels_for(WF))
    assert state.apply(events.Status(queue_remaining=1)) is False
    assert state.apply(events.ExecutionCached(nodes=(), prompt_id=P)) is False


def test_plain_renderer_rewrites_one_line() -> None:
    out = io.StringIO()
    renderer = PlainRenderer(out, bar_width=4)
    state = RunProgress(labels_for(WF))
    for ev in normal_run()[:4]:
        state.apply(ev)
        renderer.update(state)
    assert renderer.render(state) == "[1/3] KSampler #2 [#...] 1/4"
    state.apply(normal_run()[4])
    assert renderer.render(state).endswith("previews: 1")
    renderer.close()
    text = out.getvalue()
    assert text.startswith("\r[0/3] waiting")
    assert "\r[1/3] KSampler #2 [#...] 1/4" in text
    assert text.endswith("\n") and text.count("\n") == 1


def test_plain_renderer_pads_shorter_lines_and_skips_repeats() -> None:
    out = io.StringIO()
    renderer = PlainRenderer(out)
    state = RunProgress({"1": "A-very-long-node-name"})
    state.apply(events.Executing(node="1", prompt_id=P))
    renderer.update(state)
    renderer.update(state)  # unchanged: nothing written
    first = out.getvalue()
    assert first.count("\r") == 1
    state.apply(events.ExecutionSuccess(prompt_id=P))
    renderer.update(state)
    last = out.getvalue()[len(first):]
    assert last.startswith("\r[1/1] done")
    assert len(last) - 1 == len(first) - 1  # padded over the longer previous line


def test_float_progress_is_shown_compactly() -> None:
    state = RunProgress({"1": "N"})
    state.apply(events.Progress(value=0.5, max=2, node="1", prompt_id=P))
    assert PlainRenderer(io.StringIO(), bar_width=4).render(state).endswith("[#...] 0.5/2")


def test_tqdm_renderer_draws_and_closes() -> None:
    out = io.StringIO()
    renderer = TqdmRenderer(out)
    state = RunProgress(labels_for(WF))
    for ev in normal_run():
        state.apply(ev)
        renderer.update(state)
    renderer.close()
    text = out.getvalue()
    assert "KSampler #2" in text and "previews: 2" in text and "3/3" in text


def test_make_renderer_modes() -> None:
    assert isinstance(make_renderer("auto", io.StringIO()), NullRenderer)  # not a terminal
    assert isinstance(make_renderer("none", TtyStringIO()), NullRenderer)
    assert isinstance(make_renderer("plain", io.StringIO()), PlainRenderer)
    assert isinstance(make_renderer("auto", TtyStringIO()), TqdmRenderer)  # tqdm installed
    with pytest.raises(ValueError):
        make_renderer("fancy", io.StringIO())


def test_make_renderer_without_tqdm_falls_back_to_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name: str, *args: object, **kwargs: object) -> object:
        if name == "tqdm":
            raise ImportError("no tqdm")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    assert isinstance(make_renderer("auto", TtyStringIO()), PlainRenderer)
    assert isinstance(make_renderer("tqdm", TtyStringIO()), PlainRenderer)


def test_reporter_stops_drawing_after_close() -> None:
    calls: List[str] = []

    class Recorder(Renderer):
        def update(self, state: RunProgress) -> None:
            calls.append("update")

        def close(self) -> None:
            calls.append("close")

    reporter = ProgressReporter(RunProgress(labels_for(WF)), Recorder())
    reporter(events.Executing(node="1", prompt_id=P))
    reporter(events.Status(queue_remaining=0))  # no visible change: no redraw
    reporter.close()
    reporter.close()
    reporter(events.Executing(node="2", prompt_id=P))
    assert calls == ["update", "close"]
