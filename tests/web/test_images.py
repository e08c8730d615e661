"""Uploads kept by ``kmquant serve`` (send once, then ``image=<id>``), progress per ticket, the
palette in the report, and how the server stops: against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="kmquant serve needs the web extra (pip install "
                    "'kmquant[web]')")
import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from .conftest import (  # noqa: E402
    REQUEST_TIMEOUT,
    free_port,
    serve_command,
    stop,
    wait_until_up,
)

TIMEOUT = httpx.Timeout(REQUEST_TIMEOUT)


@pytest.fixture
def image_id(client, sample_bytes) -> str:
    response = client.post("/api/images", files={"file": ("photo.png", sample_bytes)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _report(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return json.loads(response.headers["X-Kmquant-Report"])


def test_upload_answers_what_the_image_is(client, sample_bytes):
    response = client.post("/api/images", files={"file": ("photo.png", sample_bytes)})
    assert response.status_code == 201
    info = response.json()
    with Image.open(io.BytesIO(sample_bytes)) as image:
        distinct = len(image.convert("RGB").getcolors(1 << 24))
        assert (info["width"], info["height"]) == image.size
    assert info["colors"] == distinct
    assert info["bytes"] == len(sample_bytes) and info["name"] == "photo.png"
    assert info["format"] == "PNG" and info["frames"] == 1
    assert len(info["id"]) >= 16


def test_kept_upload_gives_the_same_png_as_the_file(client, sample_bytes, image_id):
    by_id = client.post("/api/compress", data={"image": image_id, "k": "24"})
    by_file = client.post("/api/compress", files={"file": ("photo.png", sample_bytes)},
                          data={"k": "24"})
    assert by_id.status_code == by_file.status_code == 200
    assert by_id.content == by_file.content
    assert by_id.headers["content-disposition"] == 'attachment; filename="photo.k24.png"'


def test_moving_k_reuses_the_histogram(client, image_id):
    # requests one after the other go to the worker that decoded the upload: no count again
    for k in ("8", "32", "100"):
        report = _report(client.post("/api/compress", data={"image": image_id, "k": k}))
        assert report["k"] == int(k)
        assert report["timings"]["histogram"] == 0.0


def test_report_has_the_palette_and_each_colours_share(client, image_id):
    response = client.post("/api/compress", data={"image": image_id, "k": "12"})
    report = _report(response)
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.mode == "P"
        plte = image.getpalette()[:3 * len(report["palette"])]
        counts = dict((index, n) for n, index in image.getcolors())
    assert len(report["palette"]) == len(report["shares"]) == report["colors_used"] <= 12
    assert report["palette"] == [f"#{plte[i]:02x}{plte[i + 1]:02x}{plte[i + 2]:02x}"
                                 for i in range(0, len(plte), 3)]
    total = 768 * 512
    assert report["shares"] == [pytest.approx(counts.get(i, 0) / total, abs=1e-5)
                                for i in range(len(report["shares"]))]


def test_sweep_of_a_kept_upload(client, image_id):
    response = client.post("/api/sweep", data={"image": image_id, "k": "4,16,64"})
    assert response.status_code == 200
    rows = response.json()["rows"]
    assert [row["k"] for row in rows] == [4, 16, 64]
    assert rows[0]["psnr"] < rows[1]["psnr"] < rows[2]["psnr"]


def test_progress_follows_a_ticket_while_it_works(server, client, image_id):
    seen: list[dict] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server, timeout=TIMEOUT) as c:
            while not done.is_set():
                answer = c.get("/api/progress/sweep-1")
                if answer.status_code == 200:
                    seen.append(answer.json())
                time.sleep(0.02)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        response = client.post("/api/sweep", data={"image": image_id, "ticket": "sweep-1",
                                                   "k": "2:64"})
    finally:
        done.set()
        watcher.join()
    assert response.status_code == 200
    stages = {state["stage"] for state in seen}
    assert "sweep" in stages, seen
    steps = [state["done"] for state in seen if state["stage"] == "sweep"]
    assert steps == sorted(steps) and all(s["total"] == len(response.json()["rows"])
                                          for s in seen if s["stage"] == "sweep")
    gone = client.get("/api/progress/sweep-1")  # over: nothing in work under this ticket
    assert gone.status_code == 204 and gone.content == b""


def test_unknown_or_deleted_image_is_404_with_a_hint(client, image_id):
    assert client.delete(f"/api/images/{image_id}").status_code == 204
    response = client.post("/api/compress", data={"image": image_id, "k": "8"})
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "UnknownImageError" and "upload it again" in body["error"]
    assert client.delete(f"/api/images/{image_id}").status_code == 404


def test_file_and_image_together_or_neither_are_refused(client, sample_bytes, image_id):
    both = client.post("/api/compress", files={"file": ("a.png", sample_bytes)},
                       data={"image": image_id})
    neither = client.post("/api/sweep", data={"k": "8"})
    for response in (both, neither):
        assert response.status_code == 422
        assert "'file'" in response.json()["error"] and "'image'" in response.json()["error"]


def test_bad_ticket_is_refused(client, image_id):
    response = client.post("/api/compress", data={"image": image_id, "ticket": "../x y"})
    assert response.status_code == 422 and "ticket" in response.json()["error"]


def test_bad_upload_is_not_kept(client):
    response = client.post("/api/images", files={"file": ("notes.png", b"just some text\n")})
    assert response.status_code == 415
    assert response.json()["code"] == "NotAnImageError"


def _children(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == parent and int(entry) not in found:
                    found.add(int(entry))
                    frontier.append(int(entry))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_cleanly(sample_bytes, sig):
    port = free_port()
    process = subprocess.Popen(serve_command("--port", str(port), "--no-browser"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as c:
            assert c.post("/api/images", files={"file": ("a.png", sample_bytes)}
                          ).status_code == 201
        children = _children(process.pid)
        assert children  # the worker pool
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 0
    assert b"leaked" not in err and b"Traceback" not in err, err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in children):
        time.sleep(0.1)
    alive = [p for p in children if os.path.exists(f"/proc/{p}")
             and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"orphan processes left: {alive}"


#: The server, with an audit hook that writes down every file it opens for writing under
#: $TMPDIR (flags with O_WRONLY or O_RDWR).
_WATCHED_SERVER = """
import os, sys
folder, log = os.environ["TMPDIR"], sys.argv[1]
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(folder) \\
            and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR):
        with open(log, "a") as out:
            out.write(f"{args[0]} {args[2]}\\n")
sys.addaudithook(hook)
from kmquant.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_uploads_never_touch_the_disk(tmp_path):
    # an upload of 3 MB: above the 1 MB that Starlette keeps in memory before it spills to a
    # temporary file by default; every file the server opens in its temporary folder is noted
    import numpy as np

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    assert len(data) > 2**21
    private, opened = tmp_path / "tmp", tmp_path / "opened.txt"
    private.mkdir()
    port = free_port()
    command = [sys.executable, "-c", _WATCHED_SERVER, str(opened), "serve", "--port", str(port),
               "--no-browser"]
    process = subprocess.Popen(command, env={**os.environ, "TMPDIR": str(private)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as c:
            # the worker processes start with the first job: what their start opens there
            # (tempfile's probe of the folder, the forkserver's socket folder) is not an upload
            small = io.BytesIO()
            Image.new("RGB", (8, 8), "red").save(small, "PNG")
            assert c.post("/api/compress", files={"file": ("a.png", small.getvalue())}
                          ).status_code == 200
            opened.unlink(missing_ok=True)
            for route in ("/api/images", "/api/compress"):
                form = {"k": "2", "speed": "10"} if route == "/api/compress" else {}
                response = c.post(route, files={"file": ("noise.png", data)}, data=form)
                assert response.status_code in (200, 201), response.text
    finally:
        stop(process)
    assert not opened.exists(), f"the server wrote to its temporary folder: {opened.read_text()}"
    leftovers = [p for p in private.rglob("*") if p.is_file()]
    assert not leftovers, leftovers


def test_opens_the_browser_on_its_page(tmp_path):
    # Python's webbrowser runs $BROWSER: here a script that writes down the address it gets
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > "{opened}"\n')
    script.chmod(0o755)
    port = free_port()
    process = subprocess.Popen(serve_command("--port", str(port), "--workers", "1"),
                               env={**os.environ, "BROWSER": str(script)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # the script's one line written whole
        assert opened.exists(), "the browser was not opened"
        url = opened.read_text().strip()
        assert url == f"http://127.0.0.1:{port}/"
        page = httpx.get(url, timeout=TIMEOUT)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        stop(process)
