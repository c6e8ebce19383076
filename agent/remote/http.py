"""The HTTP client every conversation with a Cairn server goes through.

- HTTP/1.1 with keep-alive over one connection pool shared by all threads;
- TLS verified against the system's trust store by default. With a pinned
  SHA-256 fingerprint (``--pin-sha256``), the server's certificate must be
  exactly that one instead: the pin replaces chain and host-name checks (so
  self-signed deployment certificates work) and is checked right after the TLS
  handshake, before any byte of a request (or the device token) is sent;
- every request carries ``Cairn-Agent-Version`` and, once registered, the
  device token as ``Authorization: Bearer``;
- every failure becomes one of the agent's errors (agent.errors) carrying the
  server's problem-document sentence: see ``raise_for_problem``.

Plain ``http://`` is accepted only for loopback addresses (tests, a TLS proxy
on the same machine).
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from agent import __version__
from agent.errors import (
    AgentTooOld,
    CertificateNotTrusted,
    DeviceLimitReached,
    DeviceNotAuthorized,
    KeyPolicyRefused,
    LicenseCapReached,
    QuotaExceeded,
    RegistrationKeyInvalid,
    ServerRefused,
    ServerUnreachable,
    UsageError,
    WrongCredentials,
)

AGENT_VERSION_HEADER = "Cairn-Agent-Version"
PROBLEM_PREFIX = "urn:cairn:problem:"
TIMEOUT = httpx.Timeout(connect=15.0, read=180.0, write=180.0, pool=None)

# Problem types (slugs) with their own error class and exit code.
_BY_SLUG: dict[str, type[ServerRefused]] = {
    "registration-key-invalid": RegistrationKeyInvalid,
    "wrong-credentials": WrongCredentials,
    "too-many-attempts": WrongCredentials,  # locked out after wrong passwords: not a retry
    "license-cap-reached": LicenseCapReached,
    "device-limit-reached": DeviceLimitReached,
    "agent-too-old": AgentTooOld,
    "key-policy": KeyPolicyRefused,
}


def normalize_url(url: str) -> str:
    """``https://host[:port]`` without a trailing slash; UsageError when unusable."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{url!r} is not a server address like https://backup.example.com.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise UsageError(f"Refusing plain http:// to {parts.hostname}: use https:// (only "
                         "loopback addresses may use http).")
    if parts.query or parts.fragment:
        raise UsageError(f"{url!r} has a query or fragment; give just the server address.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_pin(pin: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits (colons and spaces allowed)."""
    clean = "".join(ch for ch in pin.lower() if ch not in ": ")
    if len(clean) != 64 or any(ch not in "0123456789abcdef" for ch in clean):
        raise UsageError("A certificate pin is the SHA-256 fingerprint of the server's "
                         "certificate: 64 hex digits, e.g. from `openssl x509 -noout "
                         "-fingerprint -sha256 -in server.pem`.")
    return clean


@dataclass(frozen=True)
class ServerConfig:
    """Where the server is and how to trust it."""

    url: str
    pin_sha256: str | None = None
    connections: int = 8


# --- certificate pinning ------------------------------------------------------------


class _PinnedStream(httpcore.NetworkStream):
    """A TCP stream whose TLS upgrade checks the peer certificate against a pin."""

    def __init__(self, inner: httpcore.NetworkStream, pin: str, host: str) -> None:
        self._inner, self._pin, self._host = inner, pin, host

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(ssl_context, server_hostname, timeout)
        der = stream.get_extra_info("ssl_object").getpeercert(True) or b""
        seen = hashlib.sha256(der).hexdigest()
        if seen != self._pin:
            stream.close()
            raise CertificateNotTrusted(
                f"The certificate of {self._host} does not match the pinned fingerprint "
                f"(it is {seen}). Nothing was sent. If the server's certificate was "
                "replaced on purpose, register again with the new --pin-sha256.")
        return stream


class _PinningBackend(httpcore.NetworkBackend):
    def __init__(self, pin: str) -> None:
        self._inner = httpcore.SyncBackend()
        self._pin = pin

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PinnedStream(stream, self._pin, host)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _transport(config: ServerConfig) -> httpx.HTTPTransport:
    limits = httpx.Limits(max_connections=config.connections,
                          max_keepalive_connections=config.connections, keepalive_expiry=60)
    if config.pin_sha256 is None:
        return httpx.HTTPTransport(verify=True, limits=limits, http2=False)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pin below is stricter than a chain check
    transport = httpx.HTTPTransport(verify=context, limits=limits, http2=False)
    # httpx has no public hook for the network backend; swap in a pool that uses ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False,
        network_backend=_PinningBackend(config.pin_sha256))
    return transport


# --- errors --------------------------------------------------------------------------


def _problem(response: httpx.Response) -> tuple[str, str]:
    """(slug, detail sentence) of a problem document, with fallbacks for other bodies."""
    try:
        doc = response.json()
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    slug = str(doc.get("type", "")).removeprefix(PROBLEM_PREFIX)
    detail = str(doc.get("detail") or "").strip()
    if not detail:
        detail = f"The server answered {response.status_code} {response.reason_phrase}."
    return slug, detail


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def raise_for_problem(response: httpx.Response, missing: Callable[[str], Exception]) -> None:
    """Raise the agent error for a non-success response (``missing`` builds 404 errors)."""
    status = response.status_code
    if status < 400:
        return
    slug, detail = _problem(response)
    if status == 404:
        raise missing(detail)
    if slug in _BY_SLUG:
        raise _BY_SLUG[slug](detail, status=status)
    if status == 401:
        raise DeviceNotAuthorized(detail, status=status)
    if status == 507:
        raise QuotaExceeded(f"The server's storage quota is used up: {detail}")
    if status == 429 or status >= 500:
        raise ServerUnreachable(f"The Cairn server could not serve the request ({status}): "
                                f"{detail}", retry_after=_retry_after(response))
    raise ServerRefused(detail, status=status)


# --- the client ----------------------------------------------------------------------


class ServerClient:
    """Thread-safe requests to one Cairn server, with the device token once known."""

    def __init__(self, config: ServerConfig, token: str | None = None) -> None:
        self.config = config
        headers = {AGENT_VERSION_HEADER: __version__, "User-Agent": f"cairn-agent/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=config.url, headers=headers, timeout=TIMEOUT,
                                  transport=_transport(config), follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *,
                missing: Callable[[str], Exception] = ServerRefused,
                **kwargs: Any) -> httpx.Response:
        """Send a request and return the successful response (body read)."""
        with self._translated():
            response = self._http.request(method, path, **kwargs)
        raise_for_problem(response, missing)
        return response

    def get_chunks(self, path: str, headers: dict[str, str],
                   missing: Callable[[str], Exception]) -> Iterator[bytes]:
        """Stream a GET body in pieces (for paced downloads); errors as for ``request``."""
        with self._translated(), self._http.stream("GET", path, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise_for_problem(response, missing)
            yield from response.iter_bytes(256 * 1024)

    def _translated(self) -> _Translated:
        return _Translated(self.config.url)


class _Translated:
    """Turns httpx transport failures into ServerUnreachable / CertificateNotTrusted."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: object) -> bool:
        if exc is None or not isinstance(exc, httpx.TransportError):
            return False
        if _is_certificate_error(exc):
            raise CertificateNotTrusted(
                f"The certificate of {self.url} is not trusted ({_reason(exc)}). Install the "
                "organization's CA certificate, or pin the server's certificate with "
                "--pin-sha256.") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise ServerUnreachable(f"The Cairn server at {self.url} did not answer in time.") \
                from exc
        raise ServerUnreachable(f"Cannot reach the Cairn server at {self.url}: {_reason(exc)}. "
                                "Check the address and the network.") from exc


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")
