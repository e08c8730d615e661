"""The HTTP API of ``kmquant serve``, against a real uvicorn on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="kmquant serve needs the web extra (pip install "
                    "'kmquant[web]')")
import httpx  # noqa: E402
from PIL import Image  # noqa: E402

import kmquant  # noqa: E402

from .conftest import (  # noqa: E402
    REQUEST_TIMEOUT,
    free_port,
    serve_command,
    stop,
    wait_until_up,
)

TIMEOUT = httpx.Timeout(REQUEST_TIMEOUT)


def _compress(client: httpx.Client, data: bytes, name: str = "sample.png", **form: str):
    return client.post("/api/compress", files={"file": (name, data, "application/octet-stream")},
                       data=form)


def _report(response: httpx.Response) -> dict:
    header = response.headers["X-Kmquant-Report"]
    assert header.isascii()
    return json.loads(header)


def _error(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code"}
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR for an 8-bit RGB picture of ``width`` × ``height``, and IEND."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_health_names_the_version(client):
    assert client.get("/api/health").json() == {"status": "ok", "version": kmquant.__version__}


def test_compress_sample_at_16_colours(client, sample_bytes):
    response = _compress(client, sample_bytes, k="16")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'attachment; filename="sample.k16.png"'
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.mode == "P"
        assert image.size == (768, 512)
        assert len(image.getcolors()) <= 16
    report = _report(response)
    assert report["k"] == 16
    assert report["compressed_bytes"] == len(response.content)
    assert report["original_bytes"] == len(sample_bytes)
    assert 20 < report["psnr"] < 60 and 0 < report["ssim"] <= 1


def test_compress_auto_meets_a_psnr_target(client, sample_bytes):
    response = _compress(client, sample_bytes, k="auto", target_psnr="30")
    assert response.status_code == 200
    report = _report(response)
    assert 1 <= report["k"] <= 256
    assert report["k_choice"] is not None
    assert report["psnr"] >= 30
    assert response.headers["content-disposition"].endswith(f'.k{report["k"]}.png"')


def test_text_is_refused_as_not_an_image(client):
    response = _compress(client, b"hello, this is not a picture\n" * 20, name="notes.png")
    assert response.status_code == 415
    assert _error(response)["code"] == "NotAnImageError"


def test_truncated_png_is_refused(client, sample_bytes):
    response = _compress(client, sample_bytes[:2000])
    assert response.status_code == 422
    assert _error(response)["code"] == "TruncatedImageError"


def test_empty_upload_is_a_client_error(client):
    response = _compress(client, b"")
    assert 400 <= response.status_code < 500
    assert _error(response)["error"]


def test_pixel_bomb_header_is_refused_before_decoding(client):
    response = _compress(client, _png_header(100_000, 100_000), name="bomb.png")
    assert response.status_code == 413
    assert _error(response)["code"] == "ImageTooLargeError"


def test_body_over_the_upload_cap_is_refused(client):
    sent = 0

    def body():  # 200 MB in 64 KiB pieces, no Content-Length: the server must count
        nonlocal sent
        piece = b"\0" * 65536
        while sent < 200 * 2**20:
            sent += len(piece)
            yield piece

    response = client.post("/api/compress", content=body(),
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert response.status_code == 413
    assert _error(response)["code"] == "UploadTooLargeError"
    assert sent < 100 * 2**20  # answered once past the 5 MB cap, not after the whole body


def test_body_announced_over_the_cap_is_refused_at_once(client):
    response = client.post("/api/compress", content=b"\0" * (5 * 2**20 + 1),
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert response.status_code == 413


@pytest.mark.parametrize("k", ["999", "0", "abc"])
def test_k_out_of_range_is_a_one_line_error(client, sample_bytes, k):
    response = _compress(client, sample_bytes, k=k)
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "InvalidOptionError" and repr(k) in error["error"]


def test_bad_option_and_two_targets_are_refused(client, sample_bytes):
    assert _compress(client, sample_bytes, dither="sideways").status_code == 422
    both = _compress(client, sample_bytes, target_psnr="30", max_bytes="50k")
    assert both.status_code == 422 and "one target" in _error(both)["error"]


def test_missing_file_field_is_a_json_error(client):
    response = client.post("/api/compress", data={"k": "16"})
    assert response.status_code == 422
    assert "file" in _error(response)["error"]


def test_sweep_rows_for_the_given_k(client, sample_bytes):
    response = client.post("/api/sweep", files={"file": ("sample.png", sample_bytes)},
                           data={"k": "4,8,16"})
    assert response.status_code == 200
    result = response.json()
    rows = result["rows"]
    assert [row["k"] for row in rows] == [4, 8, 16]
    sizes = [row["png_bytes"] for row in rows]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    psnrs = [row["psnr"] for row in rows]
    assert psnrs == sorted(psnrs)
    assert all(0 < row["ssim"] <= 1 for row in rows)
    assert "knee" in result and (result["width"], result["height"]) == (768, 512)


def test_docs_and_openapi(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/compress", "/api/sweep", "/api/health"} <= set(paths)


def test_unknown_path_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and "error" in response.json()


def test_overload_is_answered_429_and_nothing_is_lost(server, client, sample_bytes):
    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=server, timeout=TIMEOUT) as c:
            return _compress(c, sample_bytes, k="256")

    with ThreadPoolExecutor(12) as threads:
        responses = list(threads.map(one, range(12)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert 200 in statuses
    for response in responses:
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
            assert _error(response)["code"] == "OverloadedError"
        else:
            assert _report(response)["compressed_bytes"] == len(response.content)


def test_public_host_prints_a_warning(client):
    process = subprocess.Popen(
        serve_command("--host", "0.0.0.0", "--port", str(free_port()), "--no-browser",
                      "--workers", "1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        stop(process)
        if process.stderr is not None:
            process.stderr.close()
    assert "warning" in line and "reachable from the network" in line


def test_serve_help_mentions_no_browser(client):
    done = subprocess.run(serve_command("--help"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "--no-browser" in done.stdout and "--max-upload-mb" in done.stdout


def test_missing_web_extra_is_one_line_and_exit_10(client):
    code = ("import sys; sys.modules['fastapi'] = None\n"  # as if the extra were not installed
            "from kmquant.cli import main; sys.exit(main(['serve', '--no-browser']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 10
    assert done.stderr == "kmquant: kmquant serve needs the web extra: pip install 'kmquant[web]'\n"


def test_request_past_the_deadline_is_503_with_retry_after(client, sample_bytes):
    # a 768×512 photograph at K=256, measured, takes far longer than 50 ms
    port = free_port()
    process = subprocess.Popen(
        serve_command("--port", str(port), "--no-browser", "--workers", "1", "--timeout",
                      "0.05"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as c:
            response = _compress(c, sample_bytes, k="256")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert _error(response)["code"] == "DeadlineError"
            assert c.get("/api/health").status_code == 200
    finally:
        stop(process)
