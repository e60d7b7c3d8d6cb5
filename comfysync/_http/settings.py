"""Connection settings: everything needed to reach one server, checked once, as a frozen value.

A :class:`ConnectionSettings` holds the server's address (without credentials), the
credentials (``Authorization`` value and the ``headers=`` extras), the REST timeout, the TLS
verification and the HTTP retry policy. The transport is built from it, and results keep it
so that they can open a short-lived transport of their own after their client was closed
(``OutputFile.save()`` after the ``with`` block): same URL, same credentials, same TLS.

Its ``repr`` shows the address and the *kind* of authentication only; the secrets are in
fields excluded from ``repr``, and nothing here logs them.
"""

from __future__ import annotations

import base64
import os
from typing import Dict, FrozenSet, Mapping, Optional, Tuple, Union

from attrs import define, field
from urllib3.util.retry import Retry

from .urls import ParsedURL, parse_base_url

__all__ = [
    "DEFAULT_RETRIES",
    "IDEMPOTENT_METHODS",
    "RETRY_AFTER_CAP",
    "ConnectionSettings",
    "RetriesArg",
    "TimeoutArg",
    "VerifyArg",
    "make_retry",
    "normalise_timeout",
]

TimeoutArg = Union[None, float, Tuple[float, float]]
"""Seconds for a REST call: one number (connect and read) or ``(connect, read)``."""

VerifyArg = Union[bool, str, "os.PathLike[str]"]
"""TLS verification: ``True`` (system/certifi CAs), ``False`` (no check) or a CA bundle path."""

RetriesArg = Union[int, Retry, None]
"""HTTP retries: a number of retries (``0`` disables them), a urllib3 ``Retry``, or ``None``
for the default (:data:`DEFAULT_RETRIES`)."""

DEFAULT_RETRIES = 2
"""Retries of an idempotent request by default: enough to ride over a proxy's restart or a
server that is briefly unreachable, few enough that a dead server is reported in about a
second."""

IDEMPOTENT_METHODS: FrozenSet[str] = frozenset(
    {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}
)
"""Methods urllib3 may send again. ``POST`` never is: re-sending ``POST /prompt`` could run a
workflow twice — an ambiguous submit is resolved by asking the server about its prompt id."""

RETRY_AFTER_CAP = 10.0
"""Longest ``Retry-After`` (seconds) obeyed before a retry: a server asking for more gets
its retry after this long, so no call blocks for minutes on a header."""

_RETRY_STATUSES = (502, 503, 504)


class _Retry(Retry):
    """urllib3's ``Retry`` with ``Retry-After`` obeyed up to :data:`RETRY_AFTER_CAP`."""

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        seconds = super().get_retry_after(response)
        if seconds is None:
            return None
        return min(float(seconds), RETRY_AFTER_CAP)


def make_retry(retries: RetriesArg) -> Retry:
    """The urllib3 ``Retry`` for ``retries`` (see :data:`RetriesArg`).

    A number ``n`` retries an idempotent request up to ``n`` times when the connection
    cannot be made or the answer is 502, 503 or 504 — obeying ``Retry-After`` (up to
    :data:`RETRY_AFTER_CAP`), else waiting 0 s, 0.5 s, 1 s… — and then returns the last
    answer (so the error names its status). A read that times out or breaks is not retried
    (a 30 s timeout must not become 90 s). A ``Retry`` is used as given.
    """
    if retries is None:
        retries = DEFAULT_RETRIES
    if isinstance(retries, Retry):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(
            f"retries must be a number of retries or a urllib3 Retry, not {type(retries).__name__}"
        )
    if retries < 0:
        raise ValueError("retries must be 0 (no retries) or more")
    if retries == 0:
        return Retry(0, read=False)
    return _Retry(
        total=retries,
        connect=retries,
        read=False,
        status=retries,
        other=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=_RETRY_STATUSES,
        backoff_factor=0.25,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def _basic_header(username: str, password: str) -> str:
    """``Basic <base64>`` the way browsers do it (latin-1 when possible, else UTF-8)."""
    raw = f"{username}:{password}"
    try:
        encoded = raw.encode("latin-1")
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


def normalise_timeout(timeout: TimeoutArg) -> TimeoutArg:
    """``timeout`` checked (positive numbers, as floats); :class:`ValueError` /
    :class:`TypeError` for anything else."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError("timeout tuple must be (connect, read)")
        connect, read = (float(timeout[0]), float(timeout[1]))
        if connect <= 0 or read <= 0:
            raise ValueError("timeouts must be positive")
        return (connect, read)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds, a (connect, read) tuple or None")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return float(timeout)


def _check_header_value(what: str, value: str) -> None:
    """Refuse, at construction, a header value HTTP cannot carry — rather than a raw
    ``UnicodeEncodeError`` from ``http.client`` at the first request. The value itself is
    never quoted: it may be a secret."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} must not contain line breaks")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} contains characters an HTTP header cannot carry (only Latin-1 is "
            "allowed; a placeholder such as '…' copied from documentation?)"
        ) from None


def _check_verify(verify: VerifyArg) -> Union[bool, str]:
    if isinstance(verify, os.PathLike):
        verify = os.fspath(verify)
    if not isinstance(verify, (bool, str)):
        raise TypeError("verify must be True, False or the path of a CA bundle")
    if isinstance(verify, str) and not os.path.exists(verify):
        raise ValueError(f"verify={verify!r}: no such CA bundle file or directory")
    return verify


@define(frozen=True, repr=False)
class ConnectionSettings:
    """How to reach one server: address, credentials, timeout, TLS and retries, checked.

    ``address`` carries no credentials; ``authorization`` is the ``Authorization`` header
    value of ``auth=`` (Basic) or ``token=`` (Bearer), ``auth_kind`` what ``repr`` may say
    about it; ``headers`` the ``headers=`` extras in order. Every one of those is a
    credential: sent only to :attr:`origin`.
    """

    address: ParsedURL
    authorization: Optional[str] = field(default=None, repr=False)
    auth_kind: Optional[str] = None
    headers: Tuple[Tuple[str, str], ...] = field(default=(), repr=False)
    timeout: TimeoutArg = 30.0
    verify: Union[bool, str] = True
    retries: Retry = field(factory=lambda: make_retry(None), eq=False)

    @classmethod
    def create(
        cls,
        url: str,
        *,
        auth: Optional[Tuple[str, str]] = None,
        token: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutArg = 30.0,
        verify: VerifyArg = True,
        retries: RetriesArg = None,
    ) -> ConnectionSettings:
        """Check every option and build the settings. ``url`` may carry ``user:password@``
        (read as ``auth=``). Raises :class:`ValueError` / :class:`TypeError` with a message
        that never repeats a secret."""
        parsed = parse_base_url(url)
        if auth is None and parsed.username is not None:
            auth = (parsed.username, parsed.password or "")
        if auth is not None and token is not None:
            raise ValueError("give either auth=(user, password) or token=, not both")
        authorization: Optional[str] = None
        auth_kind: Optional[str] = None
        if auth is not None:
            if not (isinstance(auth, tuple) and len(auth) == 2):
                raise TypeError("auth must be a (user, password) tuple")
            authorization, auth_kind = _basic_header(str(auth[0]), str(auth[1])), "basic"
        elif token is not None:
            if not isinstance(token, str) or not token:
                raise ValueError("token must be a non-empty string")
            _check_header_value("token", token)
            authorization, auth_kind = f"Bearer {token}", "bearer"
        extra: Dict[str, str] = {str(k): str(v) for k, v in (headers or {}).items()}
        for name, value in extra.items():
            _check_header_value(f"headers[{name!r}]", value)
        return cls(
            address=parsed,
            authorization=authorization,
            auth_kind=auth_kind,
            headers=tuple(extra.items()),
            timeout=normalise_timeout(timeout),
            verify=_check_verify(verify),
            retries=make_retry(retries),
        )

    def __attrs_post_init__(self) -> None:
        if self.address.username is not None or self.address.password is not None:
            # Keep the one copy of URL credentials in ``authorization``.
            object.__setattr__(self, "address", _without_userinfo(self.address))

    @property
    def origin(self) -> str:
        """``scheme://host:port`` of the server: the only place credentials are sent."""
        return self.address.origin

    @property
    def base_url(self) -> str:
        """``scheme://host[:port][/prefix]``, without credentials."""
        return self.address.base_url

    @property
    def credential_header_names(self) -> FrozenSet[str]:
        """Lower-case names of every header that carries a credential of these settings
        (``Authorization`` and each ``headers=`` name): what a request leaving the origin
        must not carry."""
        return frozenset({"authorization"} | {name.lower() for name, _ in self.headers})

    def __repr__(self) -> str:
        auth = f" auth={self.auth_kind}" if self.auth_kind else ""
        extra = f" headers={len(self.headers)}" if self.headers else ""
        return f"<ConnectionSettings {self.base_url}{auth}{extra}>"


def _without_userinfo(address: ParsedURL) -> ParsedURL:
    return ParsedURL(address.scheme, address.host, address.port, address.explicit_port,
                     address.prefix, ws_path_stripped=address.ws_path_stripped)
