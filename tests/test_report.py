import json
import math

from kmquant.report import Report, human_bytes, plural


def _report(**changes):
    fields = dict(input="a.png", output="a.k8.png", width=100, height=50, original_bytes=20_000,
                  compressed_bytes=2_500, k_requested=8, colors_used=8, psnr=30.0, ssim=0.9,
                  engine="native", n_iter=7, seconds=0.1)
    fields.update(changes)
    return Report(**fields)


def test_derived_figures():
    r = _report()
    assert r.ratio == 8.0 and r.reduction_pct == 87.5 and r.bits_per_pixel == 4.0


def test_json_has_every_field_the_cli_promises():
    record = json.loads(_report().to_json())
    for key in ("input", "output", "width", "height", "original_bytes", "compressed_bytes", "ratio",
                "reduction_pct", "bits_per_pixel", "k_requested", "colors_used", "psnr", "ssim",
                "engine", "n_iter", "seconds"):
        assert key in record
    assert record["compressed_bytes"] == 2500


def test_lossless_psnr_is_null_in_json_and_readable_in_text():
    r = _report(psnr=math.inf, notes=("kept exactly",))
    assert json.loads(r.to_json())["psnr"] is None and json.loads(r.to_json())["lossless"]
    assert "lossless" in r.to_text() and "kept exactly" in r.to_text()


def test_text_uses_human_sizes():
    text = _report().to_text()
    assert "19.5 KB → 2.4 KB" in text and "8.00× smaller" in text and "-87.5%" in text


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KB"
    assert human_bytes(3 * 1024**2) == "3.0 MB"


def test_a_bigger_output_says_larger():
    text = _report(compressed_bytes=25_000).to_text()
    assert "1.25× larger, +25.0%" in text and "smaller" not in text


def test_counts_agree_with_their_nouns():
    assert plural(1, "colour") == "1 colour" and plural(2, "colour") == "2 colours"
    assert plural(0, "swap") == "0 swaps" and plural(1, "entry", "entries") == "1 entry"
    assert plural(3, "entry", "entries") == "3 entries"
    assert "engine   native, 1 iteration, " in _report(n_iter=1).to_text()
    assert "engine   native, 7 iterations, " in _report().to_text()


def test_the_text_says_what_was_written_and_where():
    text = _report(format="8-bit greyscale PNG", output="<stdout>").to_text()
    assert text.startswith("a.png → <stdout>\n") and "bits/pixel, 8-bit greyscale PNG)" in text
