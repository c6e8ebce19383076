"""The server's error tree. Every error a client or operator can cause is a sentence.

    ServerError                      500  (base; never raised for bad input)
    ├── BadRequest                   400  malformed request, hostile name, bad value
    ├── Unauthenticated              401  no, unknown, expired or revoked token
    │   └── WrongCredentials         401  username or password wrong
    ├── Forbidden                    403  authenticated but the role may not do this
    │   ├── RegistrationKeyInvalid   403  unknown or revoked registration key
    │   ├── LicenseCapReached        403  the organization's license cap is used up
    │   └── AgentTooOld              403  agent below the server's minimum version
    ├── NotFound                     404  missing, or not visible to the caller (same answer)
    ├── Conflict                     409  name taken, state does not allow the change
    │   └── DeviceLimitReached       409  the user already has four active devices
    ├── LengthRequired               411  upload without Content-Length
    ├── PayloadTooLarge              413  upload larger than the server accepts
    ├── RangeNotSatisfiable          416  Range outside the object
    ├── TooManyAttempts              429  too many wrong passwords: locked out for a while
    ├── ServiceUnavailable           503  storage or database not reachable
    └── QuotaExceeded                507  the upload would exceed a storage quota

Each error renders as an RFC 9457 problem document (``type``, ``title``,
``status``, ``detail``, plus optional extension members); the CLI prints the
detail sentence and exits non-zero. Lower-layer errors are translated at the
edge that sees them with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "urn:cairn:problem:"


class ServerError(Exception):
    """Base class: ``str(err)`` is a sentence fit for the person who caused it."""

    status = 500
    slug = "internal-error"
    title = "Internal server error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        return {"type": self.type_uri, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extensions}

    def headers(self) -> dict[str, str]:
        """HTTP headers the response must carry."""
        return {}


class BadRequest(ServerError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthenticated(ServerError):
    status, slug, title = 401, "unauthenticated", "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class WrongCredentials(Unauthenticated):
    slug, title = "wrong-credentials", "Wrong username or password"


class Forbidden(ServerError):
    status, slug, title = 403, "forbidden", "Forbidden"


class RegistrationKeyInvalid(Forbidden):
    slug, title = "registration-key-invalid", "Registration key not valid"


class LicenseCapReached(Forbidden):
    slug, title = "license-cap-reached", "License cap reached"


class AgentTooOld(Forbidden):
    slug, title = "agent-too-old", "Agent version too old"


class NotFound(ServerError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ServerError):
    status, slug, title = 409, "conflict", "Conflict"


class DeviceLimitReached(Conflict):
    slug, title = "device-limit-reached", "Device limit reached"


class LengthRequired(ServerError):
    status, slug, title = 411, "length-required", "Content-Length required"


class PayloadTooLarge(ServerError):
    status, slug, title = 413, "payload-too-large", "Object too large"


class RangeNotSatisfiable(ServerError):
    status, slug, title = 416, "range-not-satisfiable", "Range not satisfiable"

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.extensions.get('size', '*')}"}


class TooManyAttempts(ServerError):
    status, slug, title = 429, "too-many-attempts", "Too many attempts"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extensions.get("retry_after_s", 60))}


class ServiceUnavailable(ServerError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class QuotaExceeded(ServerError):
    status, slug, title = 507, "quota-exceeded", "Storage quota exceeded"
