"""The FastAPI application: POST /translate, GET /health, GET /info, GET / (a page to try it),
and the OpenAPI page FastAPI gives at /docs. Decoding is the backend's; batching is
RequestBatcher's; this module only validates, limits and answers."""

# no `from __future__ import annotations`: FastAPI reads the route's body type at definition

import json
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from seq2seq.serving.backends import OPTIONS, ServeError
from seq2seq.serving.batching import QueueFull, RequestBatcher
from seq2seq.serving.schema import Limits, TranslateResponse, request_model


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413 before it is read
    whole, and a body that is not UTF-8 with 400; a client that disconnects mid-body gets no
    answer and costs nothing more."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        try:
            if length is not None and int(length) > self.max_bytes:
                return await _reject(send, 413, self._too_large())
        except ValueError:
            return await _reject(send, 400, "invalid Content-Length header")
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _reject(send, 413, self._too_large())
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            return await _reject(send, 400, f"request body is not valid UTF-8 (byte {e.start})")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return (f"request body over {self.max_bytes} bytes (limits.max_body_bytes); send fewer "
                "or shorter texts per request")


def _utf8(value) -> bool:
    """Whether `value` (a request's part) can be written into a UTF-8 JSON response."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _reject(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def create_app(backend, limits: Limits, *, window_ms: float, max_tokens: int, max_queue: int,
               retry_after_s: int = 1, max_wait_ms: float | None = None,
               workers: int = 1) -> FastAPI:
    """The server's application over `backend` (seq2seq/serving/backends.py)."""
    TranslateRequest = request_model(limits)
    batcher = RequestBatcher(backend, window_ms / 1000, max_tokens, max_queue,
                             None if max_wait_ms is None else max_wait_ms / 1000, workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()  # uvicorn has already let the requests in flight finish

    app = FastAPI(title="seq2seq translation server", lifespan=lifespan,
                  description="Translate with a trained checkpoint or an exported model. "
                              "Concurrent requests are batched together.")
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def _short_422(request: Request, exc: RequestValidationError):
        """FastAPI's 422, without echoing a long input (10,000 texts) back to the client, nor
        one that no UTF-8 response can hold (a lone surrogate)."""
        for error in exc.errors():
            if len(repr(error.get("input"))) > 200 or not _utf8(error.get("input")):
                error.pop("input", None)
        return await request_validation_exception_handler(request, exc)

    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_none=True,
              responses={400: {"description": "body not UTF-8"},
                         413: {"description": "body too large (limits.max_body_bytes)"},
                         422: {"description": "invalid request: the detail names the field"},
                         503: {"description": "queue full: retry after Retry-After seconds"}})
    async def translate(request: TranslateRequest) -> dict:
        """Translate one text or a list; search options not given keep the model's defaults
        (GET /info). The n-best list (with scores and attention, when asked for) is returned
        when nbest > 1, scores or attention is set."""
        texts = [request.text] if isinstance(request.text, str) else list(request.text)
        options = {k: getattr(request, k) for k in OPTIONS if getattr(request, k) is not None}
        try:
            results = await batcher.submit(texts, options, request.attention)
        except QueueFull as e:
            raise HTTPException(503, str(e), headers={"Retry-After": str(retry_after_s)}) from None
        except (ServeError, ValueError) as e:  # an option the model cannot decode with
            raise HTTPException(422, str(e)) from None
        detailed = request.scores or request.attention or (request.nbest or 1) > 1
        out = []
        for hyps in results:
            item = {"text": hyps[0]["text"] if hyps else ""}
            if detailed:
                item["nbest"] = [{"text": h["text"],
                                  "score": h.get("score") if request.scores or request.nbest
                                  else None,
                                  "attention": h.get("attention") if request.attention else None}
                                 for h in hyps]
            out.append(item)
        return {"translations": out}

    @app.get("/health")
    async def health() -> dict:
        """Whether the server answers, and how many texts wait."""
        return {"status": "ok", "waiting_texts": batcher.waiting}

    @app.get("/info")
    async def info() -> dict:
        """The model (path, languages, parameters), its decode defaults, the limits and the
        batching settings."""
        return {**backend.info(), "options": OPTIONS, "limits": vars(limits),
                "batching": {"window_ms": window_ms, "max_wait_ms": batcher.max_wait_s * 1000,
                             "max_tokens": max_tokens, "workers": batcher.workers,
                             "max_queue": max_queue, "batches": batcher.batches,
                             "decode_seconds": round(batcher.decode_seconds, 3),
                             "texts": batcher.texts_done}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("seq2seq.serving").joinpath("static/index.html").read_text(
            encoding="utf-8")

    return BodyLimit(app, limits.max_body_bytes) if limits.max_body_bytes else app
