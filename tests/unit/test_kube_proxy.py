"""The proxy for a server, picked from the environment by client-go's (Go's) rules."""

from __future__ import annotations

import pytest

from imageprune.kube import proxy
from imageprune.kube.errors import ConfigError

pytestmark = pytest.mark.unit

SERVER = "https://api.prod.example.com:6443"


@pytest.mark.parametrize(
    ("server", "env", "expected"),
    [
        (SERVER, {}, None),
        (SERVER, {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        (SERVER, {"https_proxy": "p:3128"}, "http://p:3128"),  # a bare host:port is http://
        (SERVER, {"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:1"}, "http://a:1"),
        (SERVER, {"HTTP_PROXY": "http://p:3128"}, None),  # only for http:// servers
        ("http://10.1.2.3:8080", {"HTTP_PROXY": "http://p:1"}, "http://p:1"),
        # Loopback is never proxied.
        ("https://127.0.0.1:6443", {"HTTPS_PROXY": "http://p:1"}, None),
        ("https://[::1]:6443", {"HTTPS_PROXY": "http://p:1"}, None),
        ("https://localhost:6443", {"HTTPS_PROXY": "http://p:1"}, None),
    ],
)
def test_the_environments_proxy(server: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy.from_environment(server, env) == expected


@pytest.mark.parametrize(
    ("server", "no_proxy", "bypassed"),
    [
        (SERVER, "*", True),
        (SERVER, "example.com", True),  # a name covers its subdomains
        (SERVER, "EXAMPLE.COM", True),
        (SERVER, ".example.com", True),
        (SERVER, "*.example.com", True),
        (SERVER, "api.prod.example.com:6443", True),
        (SERVER, "api.prod.example.com:443", False),  # another port
        (SERVER, "ample.com", False),  # a suffix of a label is no subdomain
        ("https://example.com", ".example.com", False),  # ".name": subdomains only
        ("https://example.com", "example.com", True),
        ("https://example.com", "example.com:443", True),  # the scheme's port
        ("https://10.1.2.3:6443", "10.0.0.0/8", True),
        ("https://10.1.2.3:6443", "10.1.2.3", True),
        ("https://10.1.2.3:6443", "10.1.2.4, 192.168.0.0/16", False),
        ("https://[fd00::1]:6443", "fd00::/8", True),
        ("https://[fd00::1]:6443", "[fd00::1]:6443", True),
        (SERVER, "not/a-cidr, , ,", False),
    ],
)
def test_no_proxy(server: str, no_proxy: str, bypassed: bool) -> None:
    env = {"HTTPS_PROXY": "http://p:1", "NO_PROXY": no_proxy}
    assert (proxy.from_environment(server, env) is None) == bypassed


@pytest.mark.parametrize("value", ["socks5://p:1080", "ftp://p", "http://", "http://:3128"])
def test_a_proxy_we_cannot_use_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"\$HTTPS_PROXY: proxy"):
        proxy.from_environment(SERVER, {"HTTPS_PROXY": value})
