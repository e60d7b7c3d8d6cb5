"""The one rule for id-less frames (pure: no sockets)."""

from __future__ import annotations

from comfysync import events as ev
from comfysync._tracking.attribution import Attribution


def test_id_less_frames_get_the_running_prompt_and_node() -> None:
    a = Attribution()
    early = a.attribute(ev.Preview(image=b"x", event_type=1))
    assert (early.prompt_id, early.node_id) == (None, None)  # nothing runs: left alone
    a.attribute(ev.ExecutionStart(prompt_id="p1", timestamp=1))
    a.attribute(ev.Executing(node="5", prompt_id="p1"))
    preview = a.attribute(ev.Preview(image=b"x", event_type=1))
    assert (preview.prompt_id, preview.node_id) == ("p1", "5")
    a.attribute(ev.Progress(value=1, max=2, node="6", prompt_id="p1"))
    text = a.attribute(ev.ProgressText(text="hi", node_id="6"))
    assert text.prompt_id == "p1"
    other = a.attribute(ev.ProgressText(text="hi", node_id="9"))  # another node's text
    assert other.prompt_id is None
    tagged = a.attribute(ev.Preview(image=b"x", node_id="9", prompt_id="p2", event_type=4))
    assert (tagged.prompt_id, tagged.node_id) == ("p2", "9")  # ids of its own are kept
    # after a reconnect mid-run the server repeats the node without the prompt id
    repeated = a.attribute(ev.Executing(node="6"))
    assert repeated.prompt_id == "p1"
    end = a.attribute(ev.Executing(node=None))
    assert end.prompt_id == "p1"  # the id-less end belongs to it too...
    after = a.attribute(ev.Preview(image=b"x", event_type=1))
    assert (after.prompt_id, after.node_id) == (None, None)  # ...and nothing runs after it


def test_a_prompt_ended_over_http_is_forgotten() -> None:
    a = Attribution()
    a.attribute(ev.Executing(node="2", prompt_id="p1"))
    a.forget("other")
    assert a.attribute(ev.Preview(image=b"x", event_type=1)).prompt_id == "p1"
    a.forget("p1")
    assert a.attribute(ev.Preview(image=b"x", event_type=1)).prompt_id is None
