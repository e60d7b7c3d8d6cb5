"""What a worker reads from ``app.conf.comfysync`` (or ``$COMFYSYNC_SERVERS``), checked once.

The mapping holds three kinds of keys: ``servers`` (required), the keys of this integration
(``pool``, ``progress_interval``, ``max_retries``, ``retry_backoff``, ``retry_backoff_max``)
and every keyword of :class:`~comfysync.ComfyApi` / :class:`~comfysync.ComfyPool`
(``auth``, ``token``, ``timeout``, ``policy``, ...), which go to the client unchanged. A key
that is none of these is refused with the closest known name, so a typo in a worker's
configuration fails the first task loudly instead of being ignored. ``client_id`` is refused:
every worker process needs its own (the server sends a prompt's events to the last socket
that opened with its client id).
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

from attrs import define, field

from .._client import ComfyApi
from .._pool.pool import ComfyPool

__all__ = ["API_KEYWORDS", "POOL_KEYWORDS", "SERVERS_ENV", "Settings", "read_settings"]

#: Environment variable naming the servers when the app's configuration does not.
SERVERS_ENV = "COMFYSYNC_SERVERS"

_OWN_KEYS = frozenset(
    {
        "servers",
        "pool",
        "progress_interval",
        "max_retries",
        "retry_backoff",
        "retry_backoff_max",
    }
)


def _parameters(cls: type) -> FrozenSet[str]:
    params = list(inspect.signature(cls).parameters.values())[1:]  # after the URL(s)
    return frozenset(
        p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


#: keywords ComfyApi takes besides its URL; ComfyPool passes these on to each client
API_KEYWORDS = _parameters(ComfyApi) - {"client_id"}
#: keywords only ComfyPool takes (besides the server list)
POOL_KEYWORDS = _parameters(ComfyPool) - API_KEYWORDS


@define(frozen=True)
class Settings:
    """The checked configuration of one worker process's client.

    ``servers``: one or more server URLs (or ``ComfyPool`` server specs). ``pool``: use a
    :class:`~comfysync.ComfyPool` — by default when there are several servers or a pool-only
    keyword is given. ``client_options``: the keywords for the client's constructor.
    ``progress_interval``: least seconds between two ``PROGRESS`` updates of one task.
    ``max_retries`` / ``retry_backoff`` / ``retry_backoff_max``: Celery retries of a task whose
    server could not be reached (delay ``uniform(0, min(max, backoff * 2**n))``).
    """

    servers: Tuple[Any, ...]
    pool: bool
    client_options: Mapping[str, Any] = field(factory=dict)
    progress_interval: float = 0.25
    max_retries: int = 5
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0


def _split_servers(text: str) -> Tuple[str, ...]:
    return tuple(part for part in re.split(r"[\s,]+", text.strip()) if part)


def _unknown_key(key: str, known: FrozenSet[str]) -> ValueError:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f" — did you mean {close[0]!r}?" if close else "."
    return ValueError(
        f"app.conf.comfysync has an unknown key {key!r}{hint} Known keys: "
        f"{', '.join(sorted(_OWN_KEYS))}, and the keywords of ComfyApi / ComfyPool "
        f"({', '.join(sorted(API_KEYWORDS | POOL_KEYWORDS))})"
    )


def _number(config: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(
            f"app.conf.comfysync[{key!r}] must be a number >= {minimum}, not {value!r}"
        )
    return float(value)


def read_settings(
    config: Optional[Mapping[str, Any]], environ: Optional[Mapping[str, str]] = None
) -> Settings:
    """Check ``config`` (the app's ``comfysync`` setting, possibly None) and fill the servers
    from ``$COMFYSYNC_SERVERS`` (comma- or space-separated) when it names none."""
    env = os.environ if environ is None else environ
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise TypeError(
            "app.conf.comfysync must be a mapping such as {'servers': ['gpu1:8188']}, "
            f"not {type(config).__name__}"
        )
    known = _OWN_KEYS | API_KEYWORDS | POOL_KEYWORDS
    for key in config:
        if key == "client_id":
            raise ValueError(
                "app.conf.comfysync cannot set client_id: every worker process needs its own "
                "(the server sends a prompt's events to the last socket opened with its id)"
            )
        if not isinstance(key, str) or key not in known:
            raise _unknown_key(str(key), known)
    servers_arg = config.get("servers")
    if servers_arg is None:
        servers_arg = _split_servers(env.get(SERVERS_ENV, ""))
    elif isinstance(servers_arg, str):
        servers_arg = _split_servers(servers_arg)
    servers = tuple(servers_arg)
    if not servers:
        raise ValueError(
            "no ComfyUI server configured: set app.conf.comfysync = {'servers': "
            f"['host:8188', ...]}} or ${SERVERS_ENV}='host:8188,other:8188'"
        )
    options = {k: v for k, v in config.items() if k in API_KEYWORDS | POOL_KEYWORDS}
    pool_only = sorted(set(options) & POOL_KEYWORDS)
    pool = config.get("pool")
    if pool is None:
        pool = len(servers) > 1 or bool(pool_only)
    if not isinstance(pool, bool):
        raise ValueError(f"app.conf.comfysync['pool'] must be True or False, not {pool!r}")
    if not pool:
        if len(servers) > 1:
            raise ValueError("several servers need a ComfyPool: drop 'pool': False")
        if pool_only:
            raise ValueError(f"{pool_only} apply to a ComfyPool only: drop 'pool': False")
        if not isinstance(servers[0], str):
            raise ValueError(
                f"a single server without a pool is a URL string, not {servers[0]!r}"
            )
    max_retries = config.get("max_retries", 5)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(
            f"app.conf.comfysync['max_retries'] must be an int >= 0, not {max_retries!r}"
        )
    kwargs: Dict[str, Any] = dict(options)
    return Settings(
        servers=servers,
        pool=pool,
        client_options=kwargs,
        progress_interval=_number(config, "progress_interval", 0.25, 0.0),
        max_retries=max_retries,
        retry_backoff=_number(config, "retry_backoff", 1.0, 0.0),
        retry_backoff_max=_number(config, "retry_backoff_max", 60.0, 0.0),
    )
