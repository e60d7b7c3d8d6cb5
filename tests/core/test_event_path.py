"""One event path: listener → tracker (attribution, the prompt's state, ``job.on``) → the
user's ``api.on`` subscriptions, whatever order anything subscribed in."""

from __future__ import annotations

import threading
from typing import Any, Callable, List

from _core_workflows import text_wf

from comfysync import ComfyApi
from comfysync import events as ev

WAIT = 30.0


def test_user_subscriptions_see_attributed_events_even_when_subscribed_first(
    make_api: Callable[..., ComfyApi],
) -> None:
    """A type-1 preview carries no ids; the user's ``"*"`` subscription, made before the
    client ever connected (so before anything the client wires up), still gets it with the
    prompt and node filled in, and sees the job's state already updated by the event."""
    api = make_api(connect=False)
    api._events._options["feature_flags"] = {}  # no preview metadata: type-1 frames
    seen: List[ev.Event] = []
    states: List[str] = []
    holder: List[Any] = []

    def everything(event: ev.Event) -> None:
        seen.append(event)
        if isinstance(event, ev.ExecutionStart) and holder:
            states.append(holder[0].status)  # the tracker ran first

    api.on("*", everything)
    api.connect(timeout=WAIT)
    own: List[ev.Event] = []
    job = api.submit(text_wf("p", steps=3, preview="JPEG", seed=21), on_event=own.append)
    holder.append(job)
    job.wait(WAIT)
    previews = [e for e in seen if isinstance(e, ev.Preview)]
    assert len(previews) == 3
    assert {(p.event_type, p.prompt_id, p.node_id) for p in previews} == {
        (1, job.prompt_id, "2")
    }
    assert [e for e in own if isinstance(e, ev.Preview)] == previews
    assert all(e.prompt_id == job.prompt_id for e in own)
    assert [type(e) for e in own][:1] == [ev.ExecutionStart]  # nothing before the POST lost
    assert any(isinstance(e, ev.ExecutionSuccess) for e in own)
    if states:  # the POST may answer after execution_start was delivered
        assert states == ["running"]


def test_on_event_gets_only_its_own_prompt(make_api: Callable[..., ComfyApi]) -> None:
    api = make_api()
    got = {"a": [], "b": []}  # type: ignore[var-annotated]
    done = threading.Event()
    a = api.submit(text_wf("a", steps=2, seed=11), on_event=got["a"].append)
    b = api.submit(text_wf("b", steps=2, seed=12), on_event=got["b"].append)
    b.future.add_done_callback(lambda f: done.set())
    a.wait(WAIT)
    b.wait(WAIT)
    assert done.wait(WAIT)
    for name, job in (("a", a), ("b", b)):
        events = got[name]
        assert events and {e.prompt_id for e in events} == {job.prompt_id}
        assert sum(isinstance(e, ev.Progress) for e in events) == 2
