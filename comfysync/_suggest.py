""""Did you mean": the closest known names to a name that is not known.

One rule for every place that names a thing the user may mistype — node classes, input
names, CLI paths, folders: case is ignored (``emptyimage`` finds ``EmptyImage``) and otherwise
:mod:`difflib` decides what is close enough to look like a typo.
"""

from __future__ import annotations

import difflib
from typing import Dict, Iterable, List

__all__ = ["did_you_mean", "suggestions"]

#: How alike (difflib ratio, case ignored) a name must be to a known one to be suggested.
_CUTOFF = 0.75


def suggestions(name: str, known: Iterable[str], n: int = 3) -> List[str]:
    """Up to ``n`` names of ``known`` that ``name`` is probably a typo of, best first; a name
    differing only in case comes first. Empty when ``name`` is known or like none of them."""
    by_lower: Dict[str, str] = {}
    for candidate in known:
        by_lower.setdefault(str(candidate).lower(), str(candidate))
    if name in by_lower.values():
        return []
    lowered = name.lower()
    found = [by_lower[lowered]] if lowered in by_lower else []
    close = difflib.get_close_matches(lowered, list(by_lower), n=n, cutoff=_CUTOFF)
    found += [by_lower[c] for c in close if by_lower[c] not in found]
    return found[:n]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" — did you mean 'width'?"`` (or ``'a' or 'b'``), or ``""`` when nothing is close:
    ready to append to an error message."""
    found = suggestions(name, known)
    if not found:
        return ""
    return " — did you mean " + " or ".join(repr(f) for f in found) + "?"
