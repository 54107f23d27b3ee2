"""Where picture requests may go: public addresses, and redirects only within the same site.

A stock site's answer names the files to download, and any HTTP answer may
redirect; neither is trusted to steer omad at the machine's own services
(Redis, Ollama, a cloud metadata endpoint at 169.254.169.254, the LAN). Every
request a picture source sends (the first and each redirect) goes through
:func:`guard`'s hooks:

- its host must resolve only to public addresses: loopback, link-local,
  private, shared (CGNAT), multicast, reserved and unspecified addresses are
  refused, unless the host is named in ``assets.allow_hosts``;
- a redirect must stay on the same site (the last two labels of the host
  name, so ``api.pexels.com`` may send to ``images.pexels.com``) or lead to
  an allowed host.

The address is looked up when the request is made; the connection looks it up
again, so a name whose DNS answer changes between the two (rebinding) is not
covered here: give stock sites by name over https, whose certificate check
stops that.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httpx

from .base import SourceUnavailable

__all__ = ["guard", "check_url", "site_of", "public_address"]


def site_of(host: str) -> str:
    """The site a host name belongs to: its last two labels (an IP address is its own site)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return ".".join(host.split(".")[-2:])


def public_address(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not (addr.is_loopback or addr.is_link_local or addr.is_private or addr.is_multicast or addr.is_reserved
                or addr.is_unspecified or addr in ipaddress.ip_network("100.64.0.0/10"))


def _allowed(host: str, allow: list[str]) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    return any(host == a.strip("[]").lower().rstrip(".") for a in allow)


def check_url(url: httpx.URL, allow: list[str], what: str) -> None:
    """Refuse ``url`` unless it is http(s) to a public address, or to a host in ``allow``."""
    if url.scheme not in ("http", "https"):
        raise SourceUnavailable(f"{what}: refused a request that is not http(s) ({url.scheme}).")
    host = url.host
    if _allowed(host, allow):
        return
    try:
        infos = socket.getaddrinfo(host, url.port or (443 if url.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise SourceUnavailable(f"{what}: the host {host} cannot be resolved ({type(e).__name__}). Check the "
                                "network.") from e
    private = sorted({str(info[4][0]) for info in infos if not public_address(str(info[4][0]))})
    if private:
        raise SourceUnavailable(f"{what}: refused a request to {host}, which is on a loopback, link-local or "
                                f"private address ({', '.join(private)}). Name the host in assets.allow_hosts if "
                                "it is really meant.", details={"host": host})


def guard(allow: list[str], what: str) -> dict[str, list[Callable[[Any], None]]]:
    """httpx ``event_hooks`` that apply this module's rules to every request and redirect of a client."""

    def on_request(request: httpx.Request) -> None:
        check_url(request.url, allow, what)

    def on_response(response: httpx.Response) -> None:
        if not response.has_redirect_location:
            return
        source = response.request.url
        target = source.join(response.headers["location"])
        if site_of(target.host) != site_of(source.host) and not _allowed(target.host, allow):
            raise SourceUnavailable(f"{what}: refused a redirect from {source.host} to another site "
                                    f"({target.host}). Name that host in assets.allow_hosts if it is meant.",
                                    details={"host": target.host})

    return {"request": [on_request], "response": [on_response]}
