"""The HTTP API and the page, as a FastAPI app over an :class:`Engine`.

Routes: ``GET /`` (the page), ``GET /health``, ``GET /models``, ``POST /predict`` (JSON with a
base64 image, or multipart with an ``image`` file and a ``request`` JSON field), ``/docs`` and
``/openapi.json`` (served locally, no CDN). Every error is a JSON body ``{"error": message,
"status": code}``: 4xx for anything wrong with a request, never a traceback. One log line per
request (client, method, path, status, milliseconds, and for ``/predict`` the adapters, cache
hits and instance counts).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from samlora import __version__
from samlora.errors import SamloraError

from .engine import Engine
from .schema import PredictRequest, PredictResponse, RequestError
from .upload import from_base64

log = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"/": ("index.html", "text/html"), "/page.js": ("page.js", "text/javascript"),
              "/page.css": ("page.css", "text/css")}  # fmt: skip


def build_app(engine: Engine) -> FastAPI:
    """The server's ASGI app (run it with uvicorn, see :mod:`samlora.serve.server`)."""
    settings = engine.settings
    app = FastAPIOffline(
        title="samlora serve",
        version=__version__,
        description="One base Segment Anything model, many LoRA adapters: masks as COCO RLE at the "
        "image's original size. Errors are JSON {error, status}.",
    )

    def authorised(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.token.encode()
        ):
            raise RequestError(
                "this server needs a token: send the header 'Authorization: Bearer <token>'", 401
            )

    for route, (name, media) in PAGE_FILES.items():
        app.add_api_route(route, _page_file(name, media), methods=["GET"], include_in_schema=False)

    @app.get("/health", summary="Liveness, cache statistics and request count (no token needed)")
    def health() -> dict[str, Any]:
        return {"status": "ok", "requests": engine.requests, "cache": engine.cache.stats()}

    @app.get("/models", summary="Base model, family, task, adapters with their samlora.json, limits",
             dependencies=[Depends(authorised)])  # fmt: skip
    def models() -> dict[str, Any]:
        return engine.describe()

    @app.post(
        "/predict",
        summary="Masks for an image's prompts under an adapter (or vanilla; compare: both)",
        response_model=PredictResponse,
        dependencies=[Depends(authorised)],
        openapi_extra={"requestBody": _REQUEST_BODY},
    )
    async def predict(request: Request) -> JSONResponse:
        data, body = await _read_request(request, settings.max_upload_bytes)
        answer, note = await run_in_threadpool(engine.predict, data, body)
        request.state.note = note
        return JSONResponse(answer)

    _add_error_handlers(app)
    _document_request(app)
    app.add_middleware(RequestLog)
    return app


def _page_file(name: str, media: str):
    async def serve_file() -> FileResponse:
        return FileResponse(PAGE / name, media_type=media, headers={"Cache-Control": "no-cache"})

    return serve_file


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_big = RequestError(
        f"the request is larger than this server's upload limit ({limit} bytes; --max-upload-mb)", 413
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_request(request: Request, limit: int) -> tuple[bytes, PredictRequest]:
    """The image's bytes and the validated request, from a JSON or a multipart body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await _read_body(request, limit)
    if kind == "multipart/form-data":
        form = await _parse_form(request, raw, limit)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise RequestError("a multipart request needs the image file in form field 'image'", 400)
        data = await upload.read()
        fields = _json(form.get("request") or "{}", "form field 'request'")
        if isinstance(fields, dict) and "image" in fields:
            raise RequestError(
                "send the image once: as form field 'image' or as base64 in JSON, not both", 400
            )
        return data, _validated(fields)
    if kind in ("application/json", ""):
        body = _validated(_json(raw, "the JSON body"))
        if not body.image:
            raise RequestError(
                "no image: give 'image' (base64) or upload the file as multipart field 'image'", 400
            )
        return from_base64(body.image, limit), body
    raise RequestError(
        f"content type '{kind}' is not supported: send application/json or multipart/form-data", 415
    )


async def _parse_form(request: Request, raw: bytes, limit: int):
    async def stream() -> AsyncIterator[bytes]:
        yield raw
        yield b""

    try:
        return await MultiPartParser(
            request.headers, stream(), max_files=1, max_fields=2, max_part_size=limit
        ).parse()
    except MultiPartException as err:
        raise RequestError(f"malformed multipart body: {err}", 400) from None


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise RequestError(f"{what} is not valid JSON: {err}", 400) from None


def _validated(fields: Any) -> PredictRequest:
    try:
        return PredictRequest.model_validate(fields)
    except ValidationError as err:
        raise RequestError(_explain(err.errors())) from None


def _explain(errors: list[dict]) -> str:
    """Pydantic's errors as one line per problem: where it is and what is wrong."""
    parts = []
    for e in errors[:10]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "the request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if e.get("type") != "extra_forbidden"
                     else f"unknown field '{where}' (see /docs for the request schema)")  # fmt: skip
    return "; ".join(parts)


def _error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    request.state.note = message if len(message) <= 160 else message[:157] + "..."
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        return _error(
            request, err.status, str(err), {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        )

    @app.exception_handler(SamloraError)
    async def samlora_error(request: Request, err: SamloraError) -> JSONResponse:
        return _error(request, 422, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(request, err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(request, 422, _explain(list(err.errors())))

    @app.exception_handler(Exception)
    async def crash(request: Request, err: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(request, 500, f"internal error ({type(err).__name__}); the server log has the details")


class RequestLog:
    """ASGI middleware: one log line per HTTP request.

    The line is written just before the last body chunk goes out, so a client that has its whole
    answer can rely on the line being in the log already; a request that ends without an answer
    (a crash, a dropped client) is logged when it ends.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, logged = time.perf_counter(), [500], [False]

        def line() -> None:
            logged[0] = True
            client = scope.get("client") or ("-", 0)
            note = (scope.get("state") or {}).get("note", "")
            log.info("%s %s %s %d %.1f ms %s", client[0], scope["method"], scope["path"], status[0],
                     1000 * (time.perf_counter() - started), note)  # fmt: skip

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                line()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not logged[0]:
                line()


_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "format": "binary", "description": "The image file."},
                    "request": {"type": "string", "description": "PredictRequest as JSON, without 'image'."},
                },
            }
        },
    },
}


def _document_request(app: FastAPI) -> None:
    """Put :class:`PredictRequest` (read by hand, for both body kinds) into the OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            request = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request.pop("$defs", {}))
            components["PredictRequest"] = request
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
