"""The one outbound HTTP helper: every request PulseEcom makes to a URL it does not own (tenant webhooks,
Slack, LLM endpoints, HTTP imports) goes through here so timeouts, retries, redirects and the
private-address guard are decided in one place.

- Timeouts always (connect capped at 5 s); redirects never followed (a 3xx is an error: a redirect could
  point a tenant URL at an internal address after the check).
- Retries with exponential backoff only on timeouts, connection errors and 5xx. A 4xx is the caller's
  problem and retrying it only repeats the mistake (429 is reported as transient, not retried inline).
- The guard resolves the host and refuses private, loopback, link-local, reserved, multicast and
  unspecified addresses. The connection is then pinned to the address that was checked, so DNS cannot
  answer differently between the check and the connect (rebinding). `settings.PULSE_ALLOW_PRIVATE_WEBHOOKS`
  turns the guard off (local development and tests with a receiver on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
MAX_BACKOFF = 30.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
USER_AGENT = "PulseEcom/1.0 (+https://github.com/pulseecom)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HttpError(Exception):
    """An outbound request that did not succeed. `permanent` means retrying later will not help."""

    def __init__(self, message: str, *, permanent: bool, status_code: int | None = None, attempts: int = 0,
                 elapsed: float = 0.0, body: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code
        self.attempts = attempts
        self.elapsed = elapsed
        self.body = body


class UnsafeUrlError(HttpError):
    """The URL is malformed or points at an address tenants may not reach."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass
class HttpResult:
    status_code: int
    headers: Mapping[str, str]
    content: bytes
    elapsed: float  # seconds, all attempts included
    attempts: int
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def private_targets_allowed() -> bool:
    return bool(getattr(settings, "PULSE_ALLOW_PRIVATE_WEBHOOKS", False))


def _address_refused(ip: IPAddress) -> str | None:
    # An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged by the IPv4 address inside it.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, label in (("is_loopback", "loopback"), ("is_private", "private"),
                             ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                             ("is_reserved", "reserved"), ("is_unspecified", "unspecified")):
        if getattr(ip, attribute):
            return label
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24
        return "non-global"
    return None


def _parse(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"invalid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrlError("URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeUrlError("URL has no host")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_host(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f"cannot resolve host '{host}': {exc}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnsafeUrlError(f"host '{host}' has no address")
    return addresses


def check_url_allowed(url: str) -> list[IPAddress]:
    """Refuse a URL tenants may not target; return the checked addresses (empty when the guard is off).

    Every resolved address must be public: a host with one public and one private record is refused,
    since the client could connect to either."""
    _, host, port = _parse(url)
    if private_targets_allowed():
        return []
    addresses = resolve_host(host, port)
    for ip in addresses:
        reason = _address_refused(ip)
        if reason:
            raise UnsafeUrlError(f"'{host}' resolves to {reason} address {ip}; "
                                 "private targets are refused (PULSE_ALLOW_PRIVATE_WEBHOOKS is off)")
    return addresses


@lru_cache(maxsize=1)
def _client() -> httpx.Client:
    # One pooled client per process. trust_env=False: an environment proxy would make the address
    # check meaningless, and redirects are never followed.
    return httpx.Client(follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT},
                        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))


def _pinned(url: str, addresses: list[IPAddress]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Rewrite the URL to connect to the checked address, keeping Host and TLS name of the original."""
    if not addresses:
        return url, {}, {}
    parts = urlsplit(url)
    ip = addresses[0]
    ip_text = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = ip_text + (f":{parts.port}" if parts.port else "")
    host_header = parts.hostname or ""
    if ":" in host_header:
        host_header = f"[{host_header}]"
    if parts.port:
        host_header += f":{parts.port}"
    extensions: dict[str, Any] = {}
    if parts.scheme == "https":
        extensions["sni_hostname"] = parts.hostname
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), {"Host": host_header}, extensions


def _backoff_base() -> float:
    return float(getattr(settings, "PULSE_HTTP_BACKOFF_SECONDS", 0.5))


def backoff_delay(attempt: int, base: float | None = None) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, with jitter so many
    senders failing together do not retry in lockstep."""
    base = _backoff_base() if base is None else base
    delay = min(MAX_BACKOFF, base * (2 ** (attempt - 1)))
    return delay * (0.8 + 0.4 * random.random())


def request(method: str, url: str, *, content: bytes | None = None, headers: Mapping[str, str] | None = None,
            params: Mapping[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT,
            retries: int = DEFAULT_RETRIES, backoff: float | None = None, guard: bool = True,
            max_bytes: int = DEFAULT_MAX_BYTES, raise_for_status: bool = True) -> HttpResult:
    """Send one request with the rules above. `guard=False` only for URLs set by the operator, never
    for tenant input. Raises HttpError (UnsafeUrlError for refused targets)."""
    if guard:
        addresses = check_url_allowed(url)
    else:
        _parse(url)
        addresses = []
    target, extra_headers, extensions = _pinned(url, addresses)
    all_headers = {**extra_headers, **dict(headers or {})}
    timeouts = httpx.Timeout(timeout, connect=min(timeout, 5.0))
    started = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            status_code, response_headers, body = _send_once(method, target, content, all_headers, params,
                                                             timeouts, extensions, max_bytes)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection error"
            if attempt <= retries:
                _sleep_before_retry(attempt, backoff, url, kind)
                continue
            raise HttpError(f"{kind}: {exc or type(exc).__name__}", permanent=False, attempts=attempt,
                            elapsed=time.perf_counter() - started) from exc
        if status_code >= 500 and attempt <= retries:
            _sleep_before_retry(attempt, backoff, url, f"HTTP {status_code}")
            continue
        elapsed = time.perf_counter() - started
        result = HttpResult(status_code, response_headers, body, elapsed, attempt, url)
        if raise_for_status and status_code >= 300:
            raise _status_error(result)
        return result


def _send_once(method: str, url: str, content: bytes | None, headers: dict[str, str],
               params: Mapping[str, Any] | None, timeouts: httpx.Timeout, extensions: dict[str, Any],
               max_bytes: int) -> tuple[int, Mapping[str, str], bytes]:
    client = _client()
    req = client.build_request(method, url, content=content, headers=headers, params=params, timeout=timeouts,
                               extensions=extensions)
    response = client.send(req, stream=True)
    try:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise HttpError(f"response larger than {max_bytes} bytes", permanent=True,
                                status_code=response.status_code)
            chunks.append(chunk)
        return response.status_code, dict(response.headers), b"".join(chunks)
    finally:
        response.close()


def _sleep_before_retry(attempt: int, backoff: float | None, url: str, why: str) -> None:
    delay = backoff_delay(attempt, backoff)
    log.info("retrying %s after %s in %.2fs", _redact(url), why, delay)
    time.sleep(delay)


def _status_error(result: HttpResult) -> HttpError:
    code = result.status_code
    snippet = result.text[:200]
    if 300 <= code < 400:
        location = result.headers.get("location", "")
        message = f"HTTP {code} redirect to '{location[:200]}' (redirects are not followed)"
        return HttpError(message, permanent=True, status_code=code, attempts=result.attempts,
                         elapsed=result.elapsed, body=snippet)
    # 429 and 5xx may succeed later; other 4xx will not.
    transient = code == 429 or code >= 500
    message = f"HTTP {code}" + (f": {snippet}" if snippet else "")
    return HttpError(message, permanent=not transient, status_code=code, attempts=result.attempts,
                     elapsed=result.elapsed, body=snippet)


def _redact(url: str) -> str:
    # Webhook URLs often carry a token in the path (Slack): log the host only.
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}/…"
    except ValueError:
        return "<invalid url>"


def encode_json(data: Any) -> bytes:
    """Compact, deterministic JSON: the exact bytes that get signed are the bytes that get sent."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def http_post_json(url: str, data: Any = None, *, body: bytes | None = None,
                   headers: Mapping[str, str] | None = None, **options: Any) -> HttpResult:
    """POST JSON: `data` is encoded with `encode_json`, or pass already-encoded `body` (e.g. signed bytes).
    Options as `request` (timeout, retries, backoff, guard, max_bytes, raise_for_status)."""
    content = body if body is not None else encode_json(data)
    all_headers = {"Content-Type": "application/json", **dict(headers or {})}
    return request("POST", url, content=content, headers=all_headers, **options)


def http_get(url: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             **options: Any) -> HttpResult:
    """GET with the same rules (timeout, retries on transient failures, no redirects, guard)."""
    return request("GET", url, params=params, headers=headers, **options)
