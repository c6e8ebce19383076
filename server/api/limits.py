"""A cap on request bodies other than object uploads (JSON bodies are small)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.problems import problem_response
from server.errors import PayloadTooLarge

JSON_BODY_LIMIT = 8 << 20  # a 10 000-entry trash request is about 1 MiB


class BodyLimit:
    """Refuse non-PUT request bodies above ``limit`` bytes with 413, declared or not."""

    def __init__(self, app: ASGIApp, limit: int = JSON_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request bodies may be at most {self.limit} bytes here.",
                               max_bytes=self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "PUT":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            error = self._too_large()
            await problem_response(error.status, error.problem())(scope, receive, send)
            return
        state = {"received": 0, "too_big": False}

        async def limited() -> Message:
            if state["too_big"]:
                return {"type": "http.disconnect"}
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > self.limit:
                state["too_big"] = True  # the app sees a disconnect and stops reading
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not state["too_big"]:
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not state["too_big"]:
                raise
        if state["too_big"]:
            error = self._too_large()
            await problem_response(error.status, error.problem())(scope, receive, send)
