"""A UI node's saved widget values → the named inputs of its API-format entry.

The editor saves a node's literal inputs as a positional ``widgets_values`` list, one value per
widget in the order :func:`~comfysync._workflow.node_specs.widget_slots` gives (``input_order``,
``required`` then ``optional``). An INT with ``control_after_generate`` is followed by the
editor-only "control after generate" value, which is consumed and not sent. Extra trailing
values (upload buttons, audio players, previews) are ignored; missing trailing values take the
input's default. Some custom nodes save a dict by widget name instead, which is read by name.

Every value is checked against its input's kind, so a node saved by another version of its
class (different widgets, shifted values) is refused with :class:`WorkflowFormatError` instead
of being sent with values in the wrong inputs. So are widgets only the editor can fill in when
it queues (camera, recording, 3D view).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Sequence

from .._rest.node_defs import NodeDef
from ..errors import WorkflowFormatError
from .node_specs import EDITOR_ONLY_WIDGET_TYPES, WidgetSlot, widget_slots
from .ui_graph import describe

__all__ = ["literal", "widget_inputs"]

log = logging.getLogger("comfysync.ui_convert")

_CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})


def literal(value: Any) -> Any:
    """A literal list would read as a link; the server unwraps ``{"__value__": [...]}``."""
    return {"__value__": value} if isinstance(value, list) else value


def _is_control_value(value: Any) -> bool:
    """``"randomize"`` etc.; very old saves stored a bool ("random seed after every gen")."""
    return isinstance(value, bool) or (isinstance(value, str) and value in _CONTROL_VALUES)


def widget_inputs(api_id: str, node: Mapping[str, Any], info: NodeDef) -> Dict[str, Any]:
    """The inputs that ``node`` (API id ``api_id``, class definition ``info``) sets through
    its widgets, by input name, before links are applied."""
    slots = widget_slots(info)
    for slot in slots:
        if slot.kind in EDITOR_ONLY_WIDGET_TYPES:
            raise WorkflowFormatError(
                f"{describe(node, api_id)}: input {slot.name!r} ({slot.kind}) is filled "
                "in by the editor when you queue (camera, recording or 3D view); it cannot "
                "be converted — export the workflow in API format from the editor"
            )
    saved = node.get("widgets_values")
    inputs: Dict[str, Any] = {}
    if isinstance(saved, Mapping):  # some custom nodes save widgets by name
        for slot in slots:
            if slot.name in saved:
                inputs[slot.name] = literal(saved[slot.name])
            else:
                _fill_default(inputs, slot)
        return inputs
    values = list(saved) if isinstance(saved, list) else []
    pos = 0
    for slot in slots:
        if pos >= len(values):
            _fill_default(inputs, slot)
            continue
        value = values[pos]
        if not slot.fits(value):
            raise _mismatch(api_id, node, slot, value, values)
        inputs[slot.name] = literal(value)
        pos += 1
        if slot.has_control and pos < len(values):
            if not _is_control_value(values[pos]):
                raise _mismatch(api_id, node, slot, values[pos], values, control=True)
            pos += 1
    if pos < len(values):
        log.debug("%s: ignoring %d editor-only widget value(s)", api_id, len(values) - pos)
    return inputs


def _fill_default(inputs: Dict[str, Any], slot: WidgetSlot) -> None:
    known, value = slot.default()
    if known:
        inputs[slot.name] = value


def _mismatch(
    api_id: str,
    node: Mapping[str, Any],
    slot: WidgetSlot,
    value: Any,
    values: Sequence[Any],
    control: bool = False,
) -> WorkflowFormatError:
    what = (
        f"expected a control_after_generate choice after {slot.name!r}"
        if control
        else f"{value!r:.60} does not fit input {slot.name!r} ({slot.kind})"
    )
    return WorkflowFormatError(
        f"{describe(node, api_id)}: its saved widget values do not match this server's "
        f"definition of {node['type']} ({what}; saved values: {list(values)!r:.200}). The "
        "node was probably saved by another version of it: open and re-save the workflow "
        "in this server's editor, or export it in API format"
    )
