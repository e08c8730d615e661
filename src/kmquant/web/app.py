"""The FastAPI application of ``kmquant serve``: health, compress and sweep, and the one table
that turns each error into an HTTP status.

Routes
------
``GET /``, ``/static/…``
    The page (plain HTML, CSS and JavaScript of the package).
``GET /api/health``
    ``{"status": "ok", "version": ...}``.
``POST /api/images``
    Multipart: the image in ``file``. The server keeps it (the encoded bytes here, the decoded
    pixels and histogram in the worker that looked at it) and answers its ``id`` and what it is
    (size, distinct colours…); later requests send ``image=<id>`` instead of the file.
``DELETE /api/images/{id}``
    Forget an upload.
``POST /api/compress``
    Multipart: the image in ``file`` or an upload's id in ``image``, options as form fields.
    Answers the indexed PNG (``image/png``), with the report as compact ASCII JSON in the
    ``X-Kmquant-Report`` header.
``POST /api/sweep``
    The same image and an optional list of K; answers the sweep's rows and knee as JSON.
``GET /api/progress/{ticket}``
    The stage of the request sent with ``ticket=<ticket>``, while it is in work.

Every error is answered as ``{"error": "<one line>", "code": "<ClassName>"}``, with the status
of :data:`STATUS`; an unexpected one as 500 with a generic message (no traceback leaves).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from .. import __version__, errors
from ..cli._common import one_line
from ..options import MAX_COLORS, Options
from . import jobs
from .limits import (
    BodyLimit,
    DeadlineError,
    OverloadedError,
    Settings,
    UploadTooLargeError,
    WorkerCrashedError,
    WorkerPool,
)
from .uploads import UnknownImageError, Upload, UploadStore

__all__ = ["create_app", "STATUS", "error_response"]

log = logging.getLogger("kmquant.web")

#: HTTP status of each error class; the most specific class in an exception's MRO wins.
STATUS: dict[type[BaseException], int] = {
    errors.InvalidOptionError: 422,
    errors.NotAnImageError: 415,
    errors.UnsupportedModeError: 415,
    errors.TruncatedImageError: 422,
    errors.ImageReadError: 422,
    errors.ImageTooLargeError: 413,
    UploadTooLargeError: 413,
    errors.TargetUnreachableError: 422,
    errors.AbortedError: 422,
    errors.OutputLargerError: 422,
    errors.EngineUnavailableError: 501,
    UnknownImageError: 404,
    WorkerCrashedError: 500,
    OverloadedError: 429,
    DeadlineError: 503,
    errors.KmquantError: 500,
}
#: Seconds a client should wait before trying again (the ``Retry-After`` header).
RETRY_AFTER: dict[type[BaseException], int] = {OverloadedError: 1, DeadlineError: 1}
INTERNAL = "internal error of the server; please try again, and report it if it persists"


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (500 for anything not in :data:`STATUS`)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(exc: BaseException) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """``(status, headers, body)`` of the JSON error answer to ``exc``."""
    if isinstance(exc, errors.KmquantError):
        status, message, code = status_of(exc), one_line(str(exc)), type(exc).__name__
    else:
        status, message, code = 500, INTERNAL, "InternalError"
    headers = [(b"content-type", b"application/json")]
    retry = next((s for cls, s in RETRY_AFTER.items() if isinstance(exc, cls)), None)
    if retry is not None:
        headers.append((b"retry-after", str(retry).encode()))
    body = json.dumps({"error": message, "code": code}, ensure_ascii=True).encode()
    return status, headers, body


def _json_error(exc: BaseException) -> Response:
    status, headers, body = error_response(exc)
    return Response(body, status_code=status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in headers if k != b"content-type"})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, with its worker pool started and stopped by its lifespan.

    Parameters
    ----------
    settings : Settings, optional
        Limits (default :class:`Settings`).
    """
    settings = settings or Settings()
    pool = WorkerPool(settings.workers, settings.timeout, settings.cache_bytes)
    store = UploadStore(settings.cache_bytes)
    # Starlette keeps an upload in memory up to this size, then spills it to a temporary file;
    # uploads are capped by BodyLimit, so they never reach the disk (a class attribute: it is
    # the same for every app of this process, which serves one app)
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size,
                                         settings.max_upload_bytes + 1)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            pool.shutdown()

    app = FastAPI(title="kmquant", version=__version__, lifespan=lifespan,
                  description="Compress images by k-means colour quantization into real "
                  "indexed PNGs.")
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, reject=error_response,
                       gate=lambda scope: _refuse_when_full(scope, pool))
    _handlers(app)
    _routes(app, settings, pool, store)
    _page(app)
    return app


#: The page's files (plain HTML, CSS and JavaScript: no build step).
STATIC = Path(__file__).parent / "static"


def _page(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


#: Routes whose requests take a worker: refused before their form is parsed when all are taken.
WORK_ROUTES = frozenset({"/api/images", "/api/compress", "/api/sweep"})


def _refuse_when_full(scope: MutableMapping[str, Any], pool: WorkerPool) -> Exception | None:
    """The 429 of a request for a worker when every place is taken (checked again when the
    job is submitted: a place may be taken meanwhile)."""
    if scope.get("method") == "POST" and scope.get("path") in WORK_ROUTES and pool.full():
        return pool.overloaded()
    return None


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.KmquantError)
    async def kmquant_error(_: Request, exc: errors.KmquantError) -> Response:
        return _json_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: "
                             f"{e.get('msg', 'invalid')}" for e in exc.errors())
        return _json_error(errors.InvalidOptionError(problems or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"error": one_line(str(exc.detail)), "code": "HTTPException"},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> Response:
        log.error("internal error", exc_info=exc)
        return _json_error(exc)


Text = Annotated[str | None, Form()]
FileField = Annotated[UploadFile | None, File(description="the image (or give image=<id>)")]
ImageField = Annotated[str | None, Form(description="the id of an image sent to /api/images")]
TicketField = Annotated[str | None, Form(
    description="a name of the client's for this request, to follow it at /api/progress")]


def _routes(app: FastAPI, settings: Settings, pool: WorkerPool, store: UploadStore) -> None:
    @app.get("/api/health")
    async def health() -> dict[str, str]:
        """The server is up."""
        return {"status": "ok", "version": __version__}

    @app.post("/api/images", status_code=201)
    async def add_image(
        file: Annotated[UploadFile, File(description="the image")],
    ) -> dict[str, Any]:
        """Send an image once: the server keeps it (in memory) and answers its id and what it
        is; compress and sweep then take ``image=<id>``."""
        data = await _upload(file)
        name = file.filename or "upload"
        upload = Upload(store.new_id(), name, data)
        info = await pool.run(jobs.inspect_job, upload.id, data, name,
                              {"max_pixels": settings.max_pixels}, key=upload.id)
        upload.info = {"id": upload.id, "name": name, "bytes": len(data), **info}
        store.add(upload)
        return upload.info

    @app.delete("/api/images/{image_id}", status_code=204, response_class=Response)
    async def delete_image(image_id: Annotated[str, PathParam(max_length=64)]) -> Response:
        """Forget an image sent to /api/images."""
        if not store.remove(image_id):
            raise UnknownImageError(f"no image has the id {image_id!r}")
        return Response(status_code=204)

    @app.get("/api/progress/{ticket}", response_model=None,
             responses={204: {"description": "no request with this ticket is in work (not "
                                             "begun, or over)"}})
    async def progress(ticket: Annotated[str, PathParam(max_length=64)]
                       ) -> dict[str, Any] | Response:
        """Where the request sent with ``ticket`` is: its stage (``queued`` while it waits
        for a worker), and how far in it."""
        state = pool.progress(ticket)
        if state is None:  # not an error: a poll may come before the request or after it
            return Response(status_code=204)
        stage, done, total = state
        return {"stage": stage, "done": done, "total": total}

    @app.post("/api/compress", response_class=Response,
              responses={200: {"content": {"image/png": {}},
                               "description": "the indexed PNG; the report is in the "
                               "X-Kmquant-Report header (JSON)"}})
    async def compress(
        file: FileField = None,
        image: ImageField = None,
        k: Annotated[str | None, Form(description="K, 1 to 256, or 'auto'")] = None,
        dither: Annotated[str | None, Form(description="none, on, fs or ordered")] = None,
        space: Annotated[str | None, Form(description="rgb, linear, oklab or lab")] = None,
        rdo: Text = None,
        speed: Annotated[str | None, Form(description="1 (best) to 10 (fastest)")] = None,
        target_psnr: Text = None,
        target_ssim: Text = None,
        target_ssimulacra2: Text = None,
        max_bytes: Annotated[str | None, Form(description="50000, 50k, 1.5M")] = None,
        quality: Annotated[str | None, Form(description="MIN-MAX, as pngquant")] = None,
        ticket: TicketField = None,
    ) -> Response:
        """Compress an image to an indexed PNG."""
        key, data, filename = await _source(store, file, image)
        target = _target(target_psnr=target_psnr, target_ssim=target_ssim,
                         target_ssimulacra2=target_ssimulacra2, max_bytes=max_bytes,
                         quality=quality, dither=dither)
        n_colors = _k(k, target is not None)
        fields = _fields(settings, dither=dither, space=space, rdo=rdo, speed=speed)
        ticket = _ticket(ticket)
        png, report = await pool.run(jobs.compress_job, key, data, filename, n_colors, target,
                                     fields, ticket, key=key, ticket=ticket)
        header = json.dumps(report, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        return Response(png, media_type="image/png", headers={
            "X-Kmquant-Report": header,
            "Content-Disposition": f'attachment; filename="{_safe_stem(filename)}.k'
                                   f'{report["k"]}.png"'})

    @app.post("/api/sweep")
    async def sweep(
        file: FileField = None,
        image: ImageField = None,
        k: Annotated[str | None, Form(description="K values: '4,8,16' or '2:64' (default: "
                                      "2 to 256)")] = None,
        dither: Text = None,
        space: Text = None,
        rdo: Text = None,
        speed: Text = None,
        ticket: TicketField = None,
    ) -> dict[str, Any]:
        """Quantize the image at several K: PSNR, SSIM, PNG bytes… per K, and the knee."""
        from ..ksweep import parse_k_values

        key, data, filename = await _source(store, file, image)
        fields = _fields(settings, dither=dither, space=space, rdo=rdo, speed=speed)
        values = parse_k_values(k)  # checked before a worker is taken
        ks = ",".join(str(v) for v in values)
        ticket = _ticket(ticket)
        # a sweep is one quantization per K: the deadline is per K (a 6 MP photo takes 1 to 4 s
        # a K on one core, so 15 K can pass one request's 60 s)
        result: dict[str, Any] = await pool.run(jobs.sweep_job, key, data, filename, ks, fields,
                                                ticket, key=key, ticket=ticket,
                                                timeout=settings.timeout * len(values))
        return result


async def _source(store: UploadStore, file: UploadFile | None,
                  image: str | None) -> tuple[str | None, bytes, str]:
    """``(key, data, name)`` of the image of a request: an upload kept under ``image``, or the
    one-off ``file``."""
    if (file is None) == (image is None or not image.strip()):
        raise errors.InvalidOptionError(
            "send the image in the form field 'file', or the id of one sent to /api/images in "
            "'image' (one of the two)")
    if file is not None:
        return None, await _upload(file), file.filename or "upload"
    assert image is not None
    upload = store.get(image.strip())
    return upload.id, upload.data, upload.name


def _ticket(text: str | None) -> str | None:
    """A progress ticket, checked: up to 64 letters, digits, '-' and '_'."""
    if text is None or not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise errors.InvalidOptionError(
            "ticket must be 1 to 64 letters, digits, '-' or '_'")
    return text


async def _upload(file: UploadFile) -> bytes:
    """The uploaded bytes (held in memory)."""
    try:
        data = await file.read()
    finally:
        await file.close()
    if not data:
        raise errors.InvalidOptionError("the uploaded file is empty; choose an image file")
    return data


def _safe_stem(filename: str | None) -> str:
    """The upload's name without its folder and extension, in characters safe in a header."""
    stem = PurePath((filename or "").replace("\\", "/")).stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:100].strip("._") or "image"


def _k(text: str | None, has_target: bool) -> int | str:
    """K from its form field: 1 to 256 or 'auto' (default 64, or auto with a target)."""
    if text is None or not text.strip():
        return "auto" if has_target else 64
    if text.strip().lower() == "auto":
        return "auto"
    try:
        k = int(text)
    except ValueError:
        k = 0
    if not 1 <= k <= MAX_COLORS:
        raise errors.InvalidOptionError(
            f"k must be a whole number from 1 to {MAX_COLORS} or 'auto', got {text!r}")
    if has_target:
        raise errors.InvalidOptionError(
            f"k={k} and a target exclude each other; use k=auto with the target")
    return k


def _number(name: str, text: str, kind: type = float) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise errors.InvalidOptionError(
            f"{name} must be a{'n integer' if kind is int else ' number'}, got {text!r}") from None


def _target(*, target_psnr: str | None, target_ssim: str | None,
            target_ssimulacra2: str | None, max_bytes: str | None, quality: str | None,
            dither: str | None) -> Any:
    """The ``k=auto`` target of the form (at most one), as ``kmquant compress`` builds it."""
    from ..choose import Target, parse_bytes, parse_quality

    given = {name: value for name, value in (
        ("target_psnr", target_psnr), ("target_ssim", target_ssim),
        ("target_ssimulacra2", target_ssimulacra2), ("max_bytes", max_bytes),
        ("quality", quality)) if value is not None and value.strip()}
    if len(given) > 1:
        raise errors.InvalidOptionError(
            f"give one target at most, got {', '.join(sorted(given))}")
    if not given:
        return None
    (name, text), = given.items()
    if name == "quality":
        low, high = parse_quality(text)
        return Target("quality", high, minimum=low)
    if name == "max_bytes":
        return Target("max_bytes", parse_bytes(text))
    kind = name.removeprefix("target_")
    tried: tuple[str, ...] = ("none", "on") if kind == "ssimulacra2" and not dither else ()
    return Target(kind, _number(name, text), dithers=tried)


def _fields(settings: Settings, *, dither: str | None, space: str | None, rdo: str | None,
            speed: str | None) -> dict[str, Any]:
    """Options fields of the form, checked here (before a worker is taken)."""
    fields: dict[str, Any] = {"max_pixels": settings.max_pixels}
    if dither:
        fields["dither"] = dither.strip().lower()
    if space:
        fields["space"] = space.strip().lower()
    if rdo:
        fields["rdo"] = _number("rdo", rdo)
    if speed:
        fields["speed"] = _number("speed", speed, int)
    Options.build(**fields)  # raises InvalidOptionError for a value out of range
    return fields
