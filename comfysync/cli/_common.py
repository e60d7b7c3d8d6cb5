"""Turning the command line's server options into a :class:`ComfyApi`.

Credentials come from options or the environment and go straight into the client; nothing
here prints or logs them. :func:`rest_api` is the client of the commands that only make REST
calls: it never opens the WebSocket, so a server (or proxy) that refuses sockets, or a
socket-specific failure, cannot get in their way.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Tuple, Union

from .._http.urls import parse_base_url
from . import UsageError, resolve_server, server_source

if TYPE_CHECKING:
    from .._client import ComfyApi

__all__ = ["client_options", "open_api", "rest_api"]


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    env = os.environ.get("COMFYUI_PASSWORD")
    if env is not None:
        return env
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"password for {args.user}: ")
    raise UsageError("--user needs a password: --password or $COMFYUI_PASSWORD")


def _url_has_credentials(url: str) -> bool:
    try:
        return parse_base_url(url).username is not None
    except (TypeError, ValueError):  # open_api reports the malformed address
        return False


def client_options(args: argparse.Namespace) -> Dict[str, Any]:
    """Keyword arguments for :class:`ComfyApi` from ``--user/--password/--token/--insecure/
    --ca-bundle`` and ``$COMFYUI_PASSWORD`` / ``$COMFYUI_TOKEN``.

    Explicit credentials beat the environment: ``--user`` or a ``user:password@`` in the
    server URL wins over ``$COMFYUI_TOKEN``. Two explicit ones (``--user`` and ``--token``,
    URL credentials and ``--token``) are a usage error naming the options.
    """
    auth: Optional[Tuple[str, str]] = None
    if args.user and args.token:  # before asking for a password that would not be used
        raise UsageError("--user and --token are both given: use one of them "
                         "(--user/--password for HTTP Basic, --token for a Bearer token)")
    if args.user:
        auth = (str(args.user), _password(args))
    elif args.password is not None:
        raise UsageError("--password needs --user")
    token = args.token or os.environ.get("COMFYUI_TOKEN") or None
    url_credentials = _url_has_credentials(resolve_server(args))
    if url_credentials and auth is None and args.token:
        raise UsageError(f"the {server_source(args)} URL carries credentials (user:password@) "
                         "and --token is given too: use one of them")
    if auth is not None or url_credentials:
        token = None  # explicit credentials win over a token in the environment
    if args.insecure and args.ca_bundle:
        raise UsageError("use either --insecure or --ca-bundle, not both")
    verify: Union[bool, str] = True
    if args.insecure:
        verify = False
    elif args.ca_bundle:
        if not os.path.isfile(args.ca_bundle):
            raise UsageError(f"--ca-bundle: no such file: {args.ca_bundle}")
        verify = str(args.ca_bundle)
    return {"auth": auth, "token": token, "verify": verify}


def open_api(args: argparse.Namespace, **extra: Any) -> ComfyApi:
    """A (not yet connected) client for ``--server`` or ``$COMFYUI_URL``."""
    from .._client import ComfyApi

    if args.insecure:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    server = resolve_server(args)
    try:
        parse_base_url(server)
    except (ValueError, TypeError) as exc:  # a malformed --server / $COMFYUI_URL
        raise UsageError(f"{server_source(args)}: {exc}") from None
    options = client_options(args)
    try:
        return ComfyApi(server, **options, **extra)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


@contextlib.contextmanager
def rest_api(args: argparse.Namespace) -> Iterator[ComfyApi]:
    """A client for REST calls only, closed at the end: unlike ``with open_api(args)`` it
    never calls ``connect()`` (the REST methods do not need the socket), so errors are those
    of the HTTP request the command makes."""
    api = open_api(args)
    try:
        yield api
    finally:
        api.close()
