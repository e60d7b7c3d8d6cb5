"""The public event classes: names, immutability, reprs, and key normalisation for on()."""

from __future__ import annotations

import attrs
import pytest

from comfysync import events as ev


def test_every_wire_class_carries_its_wire_name() -> None:
    expected = {
        "status": ev.Status,
        "execution_start": ev.ExecutionStart,
        "execution_cached": ev.ExecutionCached,
        "executing": ev.Executing,
        "progress": ev.Progress,
        "progress_state": ev.ProgressState,
        "executed": ev.Executed,
        "execution_success": ev.ExecutionSuccess,
        "execution_error": ev.ExecutionError,
        "execution_interrupted": ev.ExecutionInterrupted,
        "feature_flags": ev.FeatureFlags,
        "logs": ev.Logs,
        "b_preview": ev.Preview,
        "b_text": ev.ProgressText,
    }
    assert dict(ev.WIRE_NAMES) == expected
    for name, cls in expected.items():
        assert cls.TYPE == name


def test_client_events_and_their_fields() -> None:
    assert set(ev.CLIENT_EVENTS) == {
        "connected",
        "disconnected",
        "reconnecting",
        "reconnected",
        "reconnection_failed",
        "auth_success",
        "auth_error",
    }
    r = ev.Reconnecting(attempt=3, delay=1.5)
    assert (r.type, r.attempt, r.delay, r.raw, r.prompt_id) == ("reconnecting", 3, 1.5, None, None)
    assert ev.ReconnectionFailed(attempts=4, last_error="x").attempts == 4
    assert ev.Disconnected("gone", 1001).code == 1001
    assert ev.AuthError(status=401).type == "auth_error"
    assert ev.AuthSuccess().type == "auth_success"
    assert ev.Connected(sid="abc").sid == "abc"


def test_events_are_frozen() -> None:
    event = ev.Progress(1, 2, "3", "p")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.value = 5  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ev.Status(1).queue_remaining = 2  # type: ignore[misc]


def test_type_raw_and_prompt_id_on_every_event() -> None:
    raw = {"type": "executing", "data": {"node": "1", "prompt_id": "p"}}
    executing = ev.Executing("1", "1", "p", raw=raw)
    assert executing.type == "executing"
    assert executing.raw is raw
    assert executing.prompt_id == "p"
    assert ev.Status(0, "sid").prompt_id is None  # the server does not say
    assert ev.FeatureFlags({}).prompt_id is None


def test_raw_is_not_part_of_equality_or_repr() -> None:
    a = ev.ExecutionSuccess("p", 1, raw={"type": "execution_success", "data": {"x": 1}})
    b = ev.ExecutionSuccess("p", 1)
    assert a == b
    assert "raw" not in repr(a)


def test_preview_repr_is_short() -> None:
    preview = ev.Preview(b"\xff" * 1_000_000, "image/jpeg", "1", "p")
    text = repr(preview)
    assert "<1000000 bytes>" in text
    assert len(text) < 300
    assert "\\xff" not in text


def test_unknown_event_keeps_its_own_type_and_prompt_id() -> None:
    unknown = ev.UnknownEvent("crystools.monitor", {"cpu": 1, "prompt_id": "p"})
    assert unknown.type == "crystools.monitor"
    assert unknown.prompt_id == "p"
    assert ev.UnknownEvent("x", [1, 2]).prompt_id is None
    assert ev.UnknownEvent("x", {"prompt_id": 5}).prompt_id is None


@pytest.mark.parametrize(
    "key, name",
    [
        ("progress", "progress"),
        (ev.Progress, "progress"),
        ("*", "*"),
        ("all", "*"),
        (ev.Event, "*"),
        ("execution_complete", "execution_success"),
        ("progress_text", "b_text"),
        ("b_preview_with_metadata", "b_preview"),
        (ev.Preview, "b_preview"),
        (ev.UnknownEvent, "unknown"),
        ("crystools.monitor", "crystools.monitor"),
        (ev.Reconnecting, "reconnecting"),
    ],
)
def test_normalize_key(key: ev.EventKey, name: str) -> None:
    assert ev.normalize_key(key) == name


@pytest.mark.parametrize(
    "name, close",
    [
        ("progres", "progress"),
        ("Progress", "progress"),
        ("execution_sucess", "execution_success"),
        ("execution_completed", "execution_complete"),
        ("reconected", "reconnected"),
        ("progress", None),  # known
        ("execution_complete", None),  # an alias
        ("unknown", None),  # UnknownEvent's key
        ("crystools.monitor", None),  # nothing close
        ("x", None),
    ],
)
def test_closest_name(name: str, close: object) -> None:
    assert ev.closest_name(name) == close


@pytest.mark.parametrize("bad", [3, None, object(), dict])
def test_normalize_key_rejects_non_keys(bad: object) -> None:
    with pytest.raises(TypeError):
        ev.normalize_key(bad)  # type: ignore[arg-type]


def test_normalize_key_rejects_empty_name() -> None:
    with pytest.raises(ValueError):
        ev.normalize_key("")


def test_public_names_are_documented() -> None:
    for name in ev.__all__:
        obj = getattr(ev, name)
        if isinstance(obj, type):
            assert obj.__doc__, name
