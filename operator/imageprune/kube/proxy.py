"""The HTTP proxy to reach the apiserver through, picked as client-go picks it: the
cluster's proxy-url, else $HTTPS_PROXY (for an https server; $HTTP_PROXY for http)
unless $NO_PROXY names the server, and never for a loopback server. Clusters reached
from behind a corporate proxy need it; the names may resolve only at the proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import httpx2

from imageprune.kube.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def checked(url: str, *, where: str) -> str:
    """A proxy URL we can use (httpx tunnels through http:// and https:// proxies)."""
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL as err:
        raise ConfigError(f"{where}: proxy {url!r} is not a URL: {err}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"{where}: proxy {url!r} must be an http:// or https:// URL (socks5 is not supported)"
        )
    return url


def from_environment(server: str, env: Mapping[str, str]) -> str | None:
    url = httpx2.URL(server)
    https = url.scheme == "https"
    names = ("HTTPS_PROXY", "https_proxy") if https else ("HTTP_PROXY", "http_proxy")
    name = next((n for n in names if env.get(n)), None)
    if name is None:
        return None
    port = url.port or (443 if https else 80)
    if _bypassed(url.host, port, env.get("NO_PROXY") or env.get("no_proxy") or ""):
        return None
    value = env[name].strip()
    # Go takes a bare host:port as an http:// proxy.
    return checked(value if "://" in value else f"http://{value}", where=f"${name}")


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Go's rules (net/http/httpproxy): loopback never goes through a proxy, nor a
    server that an entry of NO_PROXY names."""
    host = host.lower()
    address = _ip(host)
    if host == "localhost" or (address is not None and address.is_loopback):
        return True
    entries = (e.strip().lower() for e in no_proxy.split(","))
    return any(_names(entry, host, address, port) for entry in entries if entry)


def _names(entry: str, host: str, address: IPAddress | None, port: int) -> bool:
    """Whether one NO_PROXY entry names the server: "*", an IP, a CIDR, or a name (which
    covers its subdomains too; ".name" and "*.name" only those), each optionally with a
    port that must then match."""
    if entry == "*":
        return True
    if "/" in entry:
        try:
            return address is not None and address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False  # not a CIDR: Go ignores it too
    name, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    entry_address = _ip(name)
    if entry_address is not None:
        return entry_address == address
    name = name.removeprefix("*")  # "*.name" is ".name"
    # ".name": its subdomains only; "name": itself too.
    return host.endswith(name if name.startswith(".") else f".{name}") or host == name


def _split_port(entry: str) -> tuple[str, int | None]:
    """("name", port) of "name:port", "[v6]:port", "v6" or "name"."""
    if entry.startswith("["):
        inner, _, rest = entry[1:].partition("]")
        return inner, int(rest[1:]) if rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
