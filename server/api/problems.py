"""Every error leaves the server as an RFC 9457 problem document with a human sentence.

Bad input never produces a 500: validation errors become 400, unknown routes
404, wrong methods 405; an unexpected exception is logged (without request
bodies or headers) and answered with a generic 500 document.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.errors import PROBLEM_BASE, ServerError

log = logging.getLogger("cairn.server")
PROBLEM_MEDIA_TYPE = "application/problem+json"
_HTTP_TITLES = {404: ("not-found", "Not found", "There is no such resource."),
                405: ("method-not-allowed", "Method not allowed",
                      "This resource does not accept that HTTP method.")}


def problem_response(status: int, body: dict[str, Any],
                     headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                        headers=headers)


def _server_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServerError)
    return problem_response(exc.status, exc.problem(), exc.headers())


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(400, {"type": PROBLEM_BASE + "bad-request", "title": "Bad request",
                                  "status": 400, "detail": describe_validation(exc)})


def describe_validation(exc: RequestValidationError) -> str:
    """One sentence naming the first invalid field and what is wrong with it."""
    errors = exc.errors()
    if not errors:
        return "The request is not valid."
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    message = str(first.get("msg", "is not valid")).rstrip(".")
    more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"Invalid request: {where or 'body'}: {message}.{more}"


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title, detail = _HTTP_TITLES.get(
        exc.status_code, ("http-error", "HTTP error", str(exc.detail)))
    return problem_response(exc.status_code, {"type": PROBLEM_BASE + slug, "title": title,
                                              "status": exc.status_code, "detail": detail},
                            dict(exc.headers or {}))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s", request.method, request.url.path,
              exc_info=(type(exc), exc, exc.__traceback__))
    return problem_response(500, {"type": PROBLEM_BASE + "internal-error",
                                  "title": "Internal server error", "status": 500,
                                  "detail": "The server failed unexpectedly; the error is in "
                                            "its log."})


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServerError, _server_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
