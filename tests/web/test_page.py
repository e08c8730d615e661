"""The page of ``kmquant serve``, end to end: a real server (conftest.py), Debian's Chromium driven
by Playwright, the shipped sample uploaded through the file input.

The cases share one page (module scope) on which the sample is open; each leaves it working.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# `make test` installs both and sets KMQUANT_REQUIRE_BROWSER: there a missing one is a failure,
# not a skip that would let the suite pass without the page tested
if os.environ.get("KMQUANT_REQUIRE_BROWSER") and not CHROMIUM.exists():
    pytest.fail(f"the page tests need Chromium at {CHROMIUM} (apt-get install chromium)",
                pytrace=False)
if os.environ.get("KMQUANT_REQUIRE_BROWSER"):
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the page tests need "
                                   "Playwright (pip install playwright)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"the page tests need Chromium at {CHROMIUM}")

from PIL import Image  # noqa: E402

import kmquant  # noqa: E402

#: Milliseconds Playwright waits for the page (a sweep of the sample takes seconds on a busy CPU).
WAIT_MS = 60_000
VIEWPORT = {"width": 1280, "height": 800}
SIZE = re.compile(r"^\d+(\.\d)? (B|KB|MB|GB)$")


class Requests:
    """The API requests the page sends, in order: ``(event, method, path, form body)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, bytes]] = []
        self.finished: list[tuple[str, str, str, object]] = []

    def on_request(self, request) -> None:
        self._add("request", request, request.post_data_buffer or b"")

    def on_finished(self, request) -> None:
        self._add("finished", request, b"")
        path = "/" + request.url.split("/", 3)[3]
        self.finished.append(("finished", request.method, path, request))

    def _add(self, event: str, request, body: bytes) -> None:
        path = "/" + request.url.split("/", 3)[3]
        if path.startswith("/api/"):
            self.events.append((event, request.method, path, body))

    def sent(self, method: str, prefix: str) -> list[bytes]:
        """Bodies of the requests sent to paths starting with ``prefix``."""
        return [body for event, m, path, body in self.events
                if event == "request" and m == method and path.startswith(prefix)]


def form_value(body: bytes, name: str) -> str | None:
    """The value of multipart field ``name`` in ``body`` (None if absent)."""
    match = re.search(rb'name="' + name.encode() + rb'"\r\n\r\n([^\r]*)\r\n', body)
    return None if match is None else match.group(1).decode()


def number(text: str) -> float:
    """The first number in ``text``."""
    match = re.search(r"-?\d+(\.\d+)?", text)
    assert match is not None, f"no number in {text!r}"
    return float(match.group())


def size_bytes(text: str) -> float:
    """``'45.0 KB'`` → bytes."""
    assert SIZE.match(text), f"not a size: {text!r}"
    value, unit = text.split()
    return float(value) * 1024 ** ["B", "KB", "MB", "GB"].index(unit)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def context(browser) -> Iterator:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True,
                                  color_scheme="light")
    context.set_default_timeout(WAIT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="module")
def requests() -> Requests:
    return Requests()


@pytest.fixture(scope="module")
def page(server, context, requests) -> Iterator:
    """The page with the shipped sample opened through the file input, its first result shown."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", requests.on_request)
    page.on("requestfinished", requests.on_finished)
    page.goto(server + "/")
    page.wait_for_selector("html[data-ready=true]")
    page.set_input_files("[data-testid=file-input]", str(kmquant.sample_path()))
    page.wait_for_selector("[data-testid=result][data-state=done]")
    yield page
    assert errors == [], f"JavaScript errors on the page: {errors}"
    page.close()


def shown(page) -> dict[str, str]:
    """The numbers the page shows."""
    return {key: page.text_content(f"[data-testid={key}]") or "" for key in (
        "original-size", "compressed-size", "ratio", "psnr", "ssim", "colors", "time")}


def wait_for_k(page, k: int) -> None:
    """Wait until the result shown is the one of K=``k``."""
    page.wait_for_selector(f"[data-testid=result][data-k='{k}'][data-state=done]")


def test_first_result_of_the_uploaded_sample(page, requests) -> None:
    numbers = shown(page)
    sample_bytes = kmquant.sample_path().stat().st_size
    assert size_bytes(numbers["original-size"]) == pytest.approx(sample_bytes, rel=0.001)
    compressed = size_bytes(numbers["compressed-size"])
    assert 0 < compressed < sample_bytes
    assert 20 < number(numbers["psnr"]) < 60 and numbers["psnr"].endswith("dB")
    assert 0 < number(numbers["ssim"]) <= 1
    k = int(page.get_attribute("[data-testid=result]", "data-k") or 0)
    assert k == int(page.input_value("[data-testid=k-number]")) == 64
    assert 2 <= int(numbers["colors"]) <= k
    assert "768×512" in page.text_content("[data-testid=file-info]")
    assert page.evaluate("document.getElementById('img-after').naturalWidth") == 768
    assert page.get_attribute("[data-testid=img-after]", "src").startswith("blob:")
    # uploaded once; every later request names the upload instead of sending the file again
    assert len(requests.sent("POST", "/api/images")) == 1
    work = requests.sent("POST", "/api/compress") + requests.sent("POST", "/api/sweep")
    assert work and all(form_value(body, "image") and b'name="file"' not in body for body in work)


def test_k_slider_by_keyboard_changes_size_and_psnr(page, requests) -> None:
    before = shown(page)
    k_before = int(page.input_value("[data-testid=k-number]"))
    page.focus("[data-testid=k-range]")
    page.keyboard.press("Home")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    wait_for_k(page, 8)
    assert page.input_value("[data-testid=k-number]") == "8"
    assert page.input_value("[data-testid=k-range]") == "8"
    after = shown(page)
    assert after["compressed-size"] != before["compressed-size"]
    assert after["psnr"] != before["psnr"]
    assert k_before > 8 and number(after["psnr"]) < number(before["psnr"])
    assert size_bytes(after["compressed-size"]) < size_bytes(before["compressed-size"])
    assert 2 <= int(after["colors"]) <= 8
    # at most one compression in flight, and the last one sent is the latest K
    compress = [event for event, method, path, _ in requests.events
                if path.startswith("/api/compress")]
    assert compress == ["request", "finished"] * (len(compress) // 2)
    assert form_value(requests.sent("POST", "/api/compress")[-1], "k") == "8"


def test_number_box_and_download_of_the_png_and_report(page, tmp_path) -> None:
    page.fill("[data-testid=k-number]", "12")
    wait_for_k(page, 12)
    assert page.input_value("[data-testid=k-range]") == "12"
    colors = int(page.text_content("[data-testid=colors]") or 0)
    with page.expect_download() as download_info:
        page.click("[data-testid=download]")
    download = download_info.value
    assert download.suggested_filename == "sample.k12.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with Image.open(saved) as image:
        assert image.mode == "P"
        assert image.size == (768, 512)
        used = image.getcolors(256)
    assert used is not None and len(used) == colors <= 12

    with page.expect_download() as report_info:
        page.click("[data-testid=download-report]")
    assert report_info.value.suggested_filename == "sample.k12.json"
    report_path = tmp_path / "report.json"
    report_info.value.save_as(report_path)
    report = json.loads(report_path.read_text())
    assert report["k"] == 12 and report["colors_used"] == colors
    assert report["compressed_bytes"] == saved.stat().st_size
    swatches = page.locator("[data-testid=palette] .swatch")
    assert swatches.count() == len(report["palette"])
    assert swatches.first.get_attribute("title").startswith(report["palette"][0])


def test_curve_points_set_k_by_click_and_keyboard(page, requests) -> None:
    points = page.locator("[data-testid=curve-point]")
    points.first.wait_for()
    ks = [int(points.nth(i).get_attribute("data-k")) for i in range(points.count())]
    assert len(ks) >= 8 and ks == sorted(ks) and 16 in ks and 24 in ks
    assert "knee at K=" in page.text_content("[data-testid=curve-knee]")
    assert page.locator("#curve path.line").count() == 2

    page.click("[data-testid=curve-point][data-k='16']")
    wait_for_k(page, 16)
    assert page.input_value("[data-testid=k-number]") == "16"
    assert page.get_attribute("[data-testid=curve-point][data-k='16']", "aria-pressed") == "true"

    page.focus("[data-testid=curve-point][data-k='16']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    wait_for_k(page, 24)
    assert page.input_value("[data-testid=k-range]") == "24"
    # the sweep's progress was asked for under the ticket it was sent with
    tickets = {form_value(body, "ticket") for body in requests.sent("POST", "/api/sweep")}
    polled = {path.rsplit("/", 1)[1] for _, _, path, _ in requests.events
              if path.startswith("/api/progress/")}
    assert None not in tickets and tickets & polled


def test_divider_and_zoom_by_keyboard_and_buttons(page) -> None:
    divider = "[data-testid=divider]"
    page.focus(divider)
    page.keyboard.press("End")
    assert page.get_attribute(divider, "aria-valuenow") == "100"
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute(divider, "aria-valuenow") == "2"
    page.keyboard.press("PageUp")
    assert page.get_attribute(divider, "aria-valuenow") == "12"

    page.click("[data-testid=zoom-1]")
    assert page.text_content("[data-testid=zoom-level]") == "100%"
    assert "pixelated" in (page.get_attribute("[data-testid=viewer]", "class") or "")
    assert page.evaluate("getComputedStyle(document.getElementById('img-after')).imageRendering") \
        == "pixelated"
    transform = page.evaluate("document.getElementById('img-after').style.transform")
    assert page.evaluate("document.getElementById('img-before').style.transform") == transform
    page.click("[data-testid=zoom-in]")
    assert number(page.text_content("[data-testid=zoom-level]")) > 100
    page.click("[data-testid=zoom-fit]")
    fit = number(page.text_content("[data-testid=zoom-level]"))
    assert fit < 100  # 768×512 is shown whole in the viewer at 1280×800
    page.focus(divider)
    page.keyboard.press("End")
    for _ in range(5):
        page.keyboard.press("PageDown")
    assert page.get_attribute(divider, "aria-valuenow") == "50"


def test_k_auto_with_a_psnr_target(page) -> None:
    page.check("[data-testid=k-auto]")
    page.select_option("[data-testid=target]", "target_psnr")
    page.fill("[data-testid=target-value]", "30")
    page.wait_for_selector("[data-testid=result][data-state=done][data-target='target_psnr=30']")
    k = int(page.get_attribute("[data-testid=result]", "data-k") or 0)
    assert 2 <= k <= 256 and page.input_value("[data-testid=k-number]") == str(k)
    assert number(page.text_content("[data-testid=psnr]") or "") >= 30
    assert f"K={k}" in (page.text_content("[data-testid=notes]") or "")
    # moving K by hand leaves the automatic choice
    page.fill("[data-testid=k-number]", "10")
    wait_for_k(page, 10)
    assert not page.is_checked("[data-testid=k-auto]")


def test_a_forgotten_upload_is_sent_again(page, requests, server) -> None:
    import httpx

    uploads = [request for event, method, path, request in requests.finished
               if method == "POST" and path == "/api/images"]
    image_id = uploads[-1].response().json()["id"]
    assert httpx.delete(f"{server}/api/images/{image_id}").status_code == 204
    page.fill("[data-testid=k-number]", "20")
    wait_for_k(page, 20)
    assert int(page.text_content("[data-testid=colors]") or 0) <= 20
    assert len(requests.sent("POST", "/api/images")) == len(uploads) + 1
    ids = [form_value(body, "image") for body in requests.sent("POST", "/api/compress")]
    assert ids[-2] == image_id and ids[-1] not in (None, image_id)


def test_a_text_file_shows_an_error_and_the_page_still_works(page, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    page.set_input_files("[data-testid=file-input]", str(text))
    error = page.locator("[data-testid=error]")
    error.wait_for(state="visible")
    message = error.text_content() or ""
    assert "not an image" in message and "{" not in message
    assert "sample.png" in page.text_content("[data-testid=file-info]")

    page.fill("[data-testid=k-number]", "6")
    wait_for_k(page, 6)
    assert error.is_hidden()
    assert int(page.text_content("[data-testid=colors]") or 0) <= 6


def test_dark_theme_toggles_and_is_remembered(page, context, server) -> None:
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate("document.documentElement.dataset.theme || ''") == ""
    light = page.evaluate(background)
    page.click("[data-testid=theme-toggle]")
    assert page.get_attribute("html", "data-theme") == "dark"
    dark = page.evaluate(background)
    assert dark != light
    assert page.get_attribute("[data-testid=theme-toggle]", "aria-label") == "Switch to light theme"

    other = context.new_page()
    try:
        other.goto(server + "/")
        assert other.get_attribute("html", "data-theme") == "dark"
        assert other.evaluate(background) == dark
    finally:
        other.close()
    page.click("[data-testid=theme-toggle]")
    assert page.get_attribute("html", "data-theme") == "light"
    assert page.evaluate(background) == light


PUT_FILE = """([kind, name, b64]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, { type: "image/png" }));
    if (kind === "paste") {
        document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
        return true;
    }
    document.body.dispatchEvent(new DragEvent("dragenter", { dataTransfer: data, bubbles: true }));
    const overlay = !document.getElementById("drop-overlay").hidden;
    document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true,
                                                      cancelable: true }));
    return overlay && document.getElementById("drop-overlay").hidden;
}"""


def test_paste_and_drop_open_an_image(context, server, tmp_path) -> None:
    import base64
    import io

    import numpy as np

    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    b64 = base64.b64encode(buffer.getvalue()).decode()
    other = context.new_page()
    try:
        other.goto(server + "/")
        other.wait_for_selector("html[data-ready=true]")
        assert other.evaluate(PUT_FILE, ["paste", "pasted.png", b64]) is True
        other.wait_for_selector("[data-testid=result][data-state=done]")
        assert "64×48" in other.text_content("[data-testid=file-info]")
        assert "pasted.png" in other.text_content("[data-testid=file-info]")
        other.fill("[data-testid=k-number]", "4")
        wait_for_k(other, 4)
        assert other.evaluate(PUT_FILE, ["drop", "dropped.png", b64]) is True
        other.wait_for_function("document.getElementById('file-info').textContent"
                                ".includes('dropped.png')")
        wait_for_k(other, 4)  # the new image, with the K of the controls
        assert int(other.text_content("[data-testid=colors]") or 0) <= 4
    finally:
        other.close()


def test_full_page_screenshot(page, tmp_path) -> None:
    page.fill("[data-testid=k-number]", "16")
    wait_for_k(page, 16)
    page.locator("[data-testid=curve-point]").first.wait_for()
    page.click("[data-testid=zoom-fit]")
    artefacts = os.environ.get("KMQUANT_ARTIFACTS")  # a folder, or a .png file's path
    shot = Path(artefacts) if artefacts else tmp_path
    if shot.suffix.lower() != ".png":
        shot = shot / "serve-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    extra = os.environ.get("KMQUANT_SCREENSHOT")
    if extra:
        Path(extra).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=extra, full_page=True)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.width == VIEWPORT["width"]
        assert image.height >= VIEWPORT["height"]
