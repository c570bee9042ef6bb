"""pulse.lib.http against a real server on 127.0.0.1: timeouts, retries only on transient failures,
no redirects, and the private-address guard on resolved addresses."""

from __future__ import annotations

import ipaddress

import pytest

from pulse.lib import http
from pulse.lib.http import HttpError, UnsafeUrlError, check_url_allowed, http_get, http_post_json


def test_post_json_sends_body_and_headers(receiver) -> None:
    result = http_post_json(receiver.url, {"a": 1, "b": "é"}, headers={"X-Test": "yes"})
    assert result.status_code == 200 and result.attempts == 1
    (req,) = receiver.requests
    assert req.method == "POST" and req.headers["content-type"] == "application/json"
    assert req.headers["x-test"] == "yes"
    assert req.json() == {"a": 1, "b": "é"}


def test_retries_5xx_then_succeeds(receiver) -> None:
    receiver.respond(500)
    receiver.respond(503)
    result = http_post_json(receiver.url, {"x": 1}, retries=2)
    assert result.status_code == 200 and result.attempts == 3
    assert len(receiver.requests) == 3


def test_gives_up_after_retries_on_5xx_as_transient(receiver) -> None:
    for _ in range(3):
        receiver.respond(502)
    with pytest.raises(HttpError) as err:
        http_post_json(receiver.url, {"x": 1}, retries=2)
    assert err.value.permanent is False and err.value.status_code == 502 and err.value.attempts == 3
    assert len(receiver.requests) == 3


def test_4xx_is_not_retried_and_is_permanent(receiver) -> None:
    receiver.respond(400, b"bad payload")
    with pytest.raises(HttpError) as err:
        http_post_json(receiver.url, {"x": 1}, retries=3)
    assert err.value.permanent is True and err.value.status_code == 400 and "bad payload" in err.value.message
    assert len(receiver.requests) == 1


def test_429_is_transient_but_not_retried_inline(receiver) -> None:
    receiver.respond(429)
    with pytest.raises(HttpError) as err:
        http_get(receiver.url, retries=3)
    assert err.value.permanent is False and len(receiver.requests) == 1


def test_redirect_is_not_followed(receiver) -> None:
    receiver.respond(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    with pytest.raises(HttpError) as err:
        http_post_json(receiver.url, {"x": 1})
    assert err.value.permanent is True and "redirect" in err.value.message
    assert len(receiver.requests) == 1


def test_timeout_is_retried_then_reported(receiver) -> None:
    receiver.respond(200, delay=1.0)
    receiver.respond(200, delay=1.0)
    with pytest.raises(HttpError) as err:
        http_post_json(receiver.url, {"x": 1}, timeout=0.2, retries=1)
    assert err.value.permanent is False and "timeout" in err.value.message and err.value.attempts == 2


def test_connection_refused_is_transient() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(HttpError) as err:
        http_get(f"http://127.0.0.1:{port}/", retries=1, timeout=1)
    assert err.value.permanent is False and err.value.attempts == 2


def test_response_size_is_capped(receiver) -> None:
    receiver.respond(200, b"x" * 5000)
    with pytest.raises(HttpError, match="larger than"):
        http_get(receiver.url, max_bytes=1000)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://172.16.5.5/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fe80::1]/",
    "http://[::ffff:10.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/", "http://224.0.0.1/",
])
def test_guard_refuses_non_public_addresses(settings, url: str) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    with pytest.raises(UnsafeUrlError):
        check_url_allowed(url)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http:///nohost", "http://[::1/"])
def test_guard_refuses_malformed_urls_even_when_private_allowed(settings, url: str) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = True
    with pytest.raises(UnsafeUrlError):
        check_url_allowed(url)


def test_guard_accepts_public_address(settings) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    assert check_url_allowed("https://93.184.216.34/hook") == [ipaddress.ip_address("93.184.216.34")]


def test_guard_checks_every_resolved_address(settings, monkeypatch) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    monkeypatch.setattr(http, "resolve_host", lambda host, port: [ipaddress.ip_address("93.184.216.34"),
                                                                  ipaddress.ip_address("10.0.0.7")])
    with pytest.raises(UnsafeUrlError, match="10.0.0.7"):
        check_url_allowed("https://rebind.example/hook")


def test_request_refused_at_send_time_reaches_nobody(settings, receiver) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    with pytest.raises(UnsafeUrlError):
        http_post_json(f"http://localhost:{receiver.port}/hook", {"x": 1})
    assert receiver.requests == []


def test_connection_is_pinned_to_the_checked_address(settings, receiver, monkeypatch) -> None:
    """The request goes to the address that passed the check, with the original Host header, so a
    second DNS answer cannot redirect it."""
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    monkeypatch.setattr(http, "check_url_allowed", lambda url: [ipaddress.ip_address("127.0.0.1")])
    http_post_json(f"http://hooks.customer.test:{receiver.port}/hook", {"x": 1})
    (req,) = receiver.requests
    assert req.headers["host"] == f"hooks.customer.test:{receiver.port}"


def test_pinned_https_keeps_the_tls_name() -> None:
    url, headers, extensions = http._pinned("https://example.com:8443/a?b=1", [ipaddress.ip_address("93.184.216.34")])
    assert url == "https://93.184.216.34:8443/a?b=1"
    assert headers == {"Host": "example.com:8443"} and extensions == {"sni_hostname": "example.com"}
    url6, headers6, _ = http._pinned("http://example.com/x", [ipaddress.ip_address("2606:2800:220:1::1")])
    assert url6 == "http://[2606:2800:220:1::1]/x" and headers6 == {"Host": "example.com"}


def test_guard_off_for_operator_urls(settings, receiver) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    assert http_get(receiver.url, guard=False).status_code == 200


def test_backoff_grows_exponentially() -> None:
    delays = [http.backoff_delay(n, base=1.0) for n in (1, 2, 3, 4)]
    for n, delay in enumerate(delays, 1):
        assert 0.8 * 2 ** (n - 1) <= delay <= 1.2 * 2 ** (n - 1)
    assert http.backoff_delay(20, base=1.0) <= http.MAX_BACKOFF * 1.2
