"""``kmquant sweep``, ``compare``, ``scatter`` and ``compress -k auto``, in-process."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from kmquant.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err):
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def test_sweep_writes_table_and_figure(capsys, photo):
    code, out, err = _run(capsys, "sweep", photo, "--k", "2,4,8,16", "--silhouette-sample", "300")
    assert code == 0, err
    with open(photo.with_name("photo.sweep.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["k"]) for r in rows] == [2, 4, 8, 16]
    assert float(rows[-1]["psnr"]) > float(rows[0]["psnr"])
    with Image.open(photo.with_name("photo.sweep.png")) as im:
        assert im.width == 1200
    assert "silhouette on a seeded sample of 300 pixels" in out


def test_sweep_json_and_refuses_to_overwrite(capsys, photo, tmp_path):
    table = tmp_path / "t.json"
    code, out, _ = _run(capsys, "sweep", photo, "--k", "2:8", "--csv", table, "--json",
                        "--figure", tmp_path / "f.png")
    assert code == 0
    assert json.loads(out)["rows"][0]["k"] == 2
    assert json.loads(table.read_text())["rows"][-1]["k"] == 8
    code, _, err = _run(capsys, "sweep", photo, "--k", "2:8", "--csv", table)
    assert code == 8 and "--force" in _one_line(err)


@pytest.mark.parametrize("spec, words", [("300:2", "between 1 and 256"), ("64:2", "backwards"),
                                         ("0", "between 1 and 256"), ("x", "cannot read")])
def test_sweep_bad_ranges(capsys, photo, spec, words):
    code, _, err = _run(capsys, "sweep", photo, "--k", spec)
    assert code == 2 and words in _one_line(err)
    assert not photo.with_name("photo.sweep.csv").exists()


def test_sweep_of_an_image_with_few_colours_notes_it(capsys, tmp_path):
    src = tmp_path / "flat.png"
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[4:] = [10, 200, 30]
    Image.fromarray(pixels).save(src)
    code, out, _ = _run(capsys, "sweep", src, "--k", "2,4,8")
    assert code == 0 and "note: the image has only 2 colours" in out


def test_auto_k_for_a_psnr_target(capsys, photo):
    code, out, err = _run(capsys, "compress", photo, "-k", "auto", "--target-psnr", "30", "--json")
    assert code == 0, err
    record = json.loads(out)
    k = record["k_choice"]["k"]
    assert record["k_requested"] == k and record["psnr"] >= 30
    assert record["output"].endswith(f"photo.k{k}.png")
    assert "smallest K with PSNR ≥ 30 dB" in record["k_choice"]["reason"]


def test_a_target_implies_auto_and_size_target(capsys, photo):
    code, out, _ = _run(capsys, "compress", photo, "--max-bytes", "4k", "--json")
    record = json.loads(out)
    assert code == 0 and record["compressed_bytes"] <= 4096
    assert record["k_choice"]["target"] == "max_bytes"


def test_knee_by_default(capsys, photo):
    code, out, _ = _run(capsys, "compress", photo, "-k", "auto")
    assert code == 0 and "knee of the inertia curve" in out


def test_unreachable_target_writes_nothing_and_has_its_own_code(capsys, photo):
    before = sorted(photo.parent.iterdir())
    code, _, err = _run(capsys, "compress", photo, "--target-psnr", "90")
    assert code == 12 and "cannot reach PSNR ≥ 90 dB" in _one_line(err)
    assert sorted(photo.parent.iterdir()) == before
    code, out, _ = _run(capsys, "compress", photo, "--target-psnr", "90", "--best-effort")
    assert code == 0 and "best effort: K=256" in out


def test_smallest_file_for_a_perceptual_target(capsys, photo):
    code, out, err = _run(capsys, "compress", photo, "--target-ssimulacra2", "55", "--json")
    assert code == 0, err
    record = json.loads(out)
    choice = record["k_choice"]
    assert choice["target"] == "ssimulacra2" and choice["dither"] in ("none", "on")
    assert choice["achieved"] >= 55 and record["output"].endswith(f"photo.k{choice['k']}.png")
    assert "smallest file with SSIMULACRA2 ≥ 55" in choice["reason"]
    code, out, err = _run(capsys, "compress", photo, "--target-ssimulacra2", "55", "--dither",
                          "none", "--json", "-f")
    assert code == 0 and json.loads(out)["k_choice"]["dither"] is None  # only the one asked for


def test_quality_as_pngquant_with_exit_99_below_the_minimum(capsys, photo):
    code, out, err = _run(capsys, "compress", photo, "--quality", "40-60", "--json")
    assert code == 0, err
    choice = json.loads(out)["k_choice"]
    assert choice["target"] == "quality" and choice["achieved"] >= 60
    before = sorted(photo.parent.iterdir())
    code, _, err = _run(capsys, "compress", photo, "--quality", "100-100", "-f")
    assert code == 99 and "below the minimum 100 even with 256 colours" in _one_line(err)
    assert sorted(photo.parent.iterdir()) == before  # nothing written


@pytest.mark.parametrize("argv, words", [
    (["-k", "8", "--target-psnr", "30"], "exclude each other"),
    (["-k", "8", "--quality", "50-80"], "exclude each other"),
    (["--quality", "80-50"], "MIN <= MAX"),
    (["--target-ssimulacra2", "120"], "goes up to 100"),
    (["--quality", "60", "--target-psnr", "30"], "not allowed with argument"),
    (["--best-effort"], "--best-effort goes with -k auto"),
    (["--max-bytes", "lots"], "cannot read the size"),
    (["--target-ssim", "2"], "--target-ssim must be in (0, 1]"),
    (["--max-bytes", "5k", "--format", "jpeg"], "sizes the indexed PNG; write a .png (or give --format png)"),
])
def test_bad_target_options(capsys, photo, argv, words):
    code, _, err = _run(capsys, "compress", photo, *argv)
    assert code == 2 and words in _one_line(err)


def test_compare_figure_from_files(capsys, photo):
    assert _run(capsys, "compress", photo, "-k", "8", "-q")[0] == 0
    compressed = photo.with_name("photo.k8.png")
    code, out, err = _run(capsys, "compare", photo, compressed)
    assert code == 0, err
    with Image.open(photo.with_name("photo.k8.compare.png")) as im:
        assert im.width == 1200 and len(im.convert("RGB").getcolors(1 << 24)) > 500


def test_compare_refuses_images_of_different_sizes(capsys, photo, tmp_path):
    other = tmp_path / "small.png"
    Image.open(photo).crop((0, 0, 50, 40)).save(other)
    code, _, err = _run(capsys, "compare", photo, other, "-o", tmp_path / "c.png")
    assert code == 2 and "differ in size (96×64 vs 50×40)" in _one_line(err)
    assert not (tmp_path / "c.png").exists()


def test_scatter_figure_from_a_file(capsys, photo):
    code, out, err = _run(capsys, "scatter", photo, "-k", "6", "--sample", "800")
    assert code == 0, err
    with Image.open(photo.with_name("photo.k6.scatter.png")) as im:
        assert im.width == 1000


def test_one_pixel_image_everywhere(capsys, tmp_path):
    src = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (12, 34, 56)).save(src)
    code, out, _ = _run(capsys, "compress", src, "-k", "4")
    assert code == 0 and "only 1 colour, so it is kept exactly (lossless)" in out
    assert "1 colours" not in out
    code, out, _ = _run(capsys, "compress", src, "-k", "auto", "--target-psnr", "40", "-o",
                        tmp_path / "auto.png")
    assert code == 0 and "K=1" in out
    code, out, _ = _run(capsys, "sweep", src)
    assert code == 0 and "only 1 colour" in out
    code, _, err = _run(capsys, "scatter", src, "-k", "2")
    assert code == 0, err
    code, _, err = _run(capsys, "compare", src, tmp_path / "dot.k4.png")
    assert code == 0, err


def test_space_and_dither_flags(capsys, photo):
    code, out, err = _run(capsys, "compress", photo, "-k", "8", "--space", "oklab", "--dither",
                          "fs", "--dither-strength", "0.5", "--json")
    assert code == 0, err
    assert json.loads(out)["delta_e"] > 0
    code, _, err = _run(capsys, "compress", photo, "--dither", "noise")
    assert code == 2 and "invalid choice" in _one_line(err)
    code, _, err = _run(capsys, "compress", photo, "--dither", "fs", "--dither-strength", "3",
                        "-o", "x.png")
    assert code == 2 and "dither strength must be between 0 and 1" in _one_line(err)
