"""The batch manifest, status records and storage by URL: resume redoes only what changed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path, PurePath

import fsspec  # noqa: E402  (the dask extra, which make test installs)
import numpy as np
import pytest
from PIL import Image

from kmquant import errors, storage
from kmquant.batch import expand_inputs, plan_outputs
from kmquant.cli import main
from kmquant.manifest import MANIFEST_NAME, Manifest, options_digest, unchanged
from kmquant.tasks import Task, run_task


def _image(path: Path, seed: int, size=(24, 32)) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def photos(tmp_path) -> Path:
    for i, folder in enumerate(("a", "a", "b", "b/c")):
        _image(tmp_path / "in" / folder / f"p{i}.png", i)
    (tmp_path / "in" / "a" / "bad.png").write_bytes(b"not an image")
    return tmp_path


def _batch(capsys, *args: str) -> tuple[int, list[dict]]:
    code = main(["compress", *args, "-j", "1", "--json", "-q"])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*.png")}


def test_manifest_keeps_the_last_record_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "m" / MANIFEST_NAME
    with Manifest(path) as manifest:
        manifest.append({"input": "a.png", "status": "failed"})
        manifest.append({"input": "b.png", "status": "done", "psnr": 30.5})
    with open(path, "ab") as handle:  # a crash in the middle of a line
        handle.write(b'{"input": "a.png", "sta')
    with Manifest(path) as manifest:
        assert manifest.records()["a.png"]["status"] == "failed"
        manifest.append({"input": "a.png", "status": "done"})
    lines = path.read_text().splitlines()
    assert lines[-1] == '{"input": "a.png", "status": "done"}'  # its own line, not glued on
    assert Manifest(path).records()["a.png"]["status"] == "done"
    assert Manifest(tmp_path / "none.jsonl").records() == {}


def test_the_options_digest_changes_with_what_decides_the_bytes():
    base = {"n_colors": 16, "dither": "none", "palette": np.arange(6).reshape(2, 3)}
    assert options_digest(base) == options_digest(dict(reversed(list(base.items()))))
    assert options_digest(base) != options_digest(dict(base, n_colors=17))
    assert options_digest(base) != options_digest(dict(base, palette=np.zeros((2, 3))))


def test_a_bad_file_is_a_record_not_an_exception(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    record = run_task(Task(str(bad), str(tmp_path / "out.png"), str(tmp_path)),
                      {"n_colors": 8})
    assert record["status"] == "failed" and record["exit_code"] == 5
    assert "truncated or corrupt" in record["error"]
    assert not (tmp_path / "out.png").exists()
    missing = run_task(Task(str(tmp_path / "gone.png"), str(tmp_path / "o.png"), str(tmp_path)),
                       {"n_colors": 8})
    assert missing["status"] == "failed" and missing["exit_code"] == 3


def test_a_done_record_holds_what_the_manifest_needs(tmp_path):
    _image(tmp_path / "p.png", 1)
    record = run_task(Task(str(tmp_path / "p.png"), str(tmp_path / "p.k8.png"), str(tmp_path)),
                      {"n_colors": 8})
    assert record["status"] == "done"
    assert record["input_hash"] == storage.content_hash(tmp_path / "p.png")
    assert record["input_bytes"] == (tmp_path / "p.png").stat().st_size
    assert record["compressed_bytes"] == (tmp_path / "p.k8.png").stat().st_size
    assert record["psnr"] > 10 and 0 < record["ssim"] <= 1
    json.dumps(record)  # plain data: it pickles back from workers and goes into the manifest


def test_a_rerun_redoes_only_what_changed(capsys, photos, monkeypatch):
    monkeypatch.chdir(photos)
    code, first = _batch(capsys, "in", "-r", "--out-dir", "out", "-k", "8")
    assert code == 4  # the bad file
    assert sorted(r["status"] for r in first) == ["done"] * 4 + ["failed"]
    manifest = Manifest(photos / "out" / MANIFEST_NAME).records()
    assert len(manifest) == 5 and all("options_digest" in r for r in manifest.values())
    before = _stamps(photos / "out")

    code, second = _batch(capsys, "in", "-r", "--out-dir", "out", "-k", "8")
    statuses = {r["input"]: r["status"] for r in second}
    assert statuses.pop("in/a/bad.png") == "failed"  # failures are tried again
    assert set(statuses.values()) == {"skipped"}
    assert all("manifest" in r["reason"] for r in second if r["status"] == "skipped")
    assert _stamps(photos / "out") == before  # nothing rewritten

    # new content, same size and a new time → redone; the same bytes with a new time → kept
    time.sleep(0.01)
    _image(photos / "in" / "b" / "p2.png", 99)
    os.utime(photos / "in" / "a" / "p0.png")  # touched, not changed: the hash says so
    (photos / "out" / "a" / "p1.k8.png").unlink()  # an output gone → redone
    code, third = _batch(capsys, "in", "-r", "--out-dir", "out", "-k", "8")
    redone = sorted(r["input"] for r in third if r["status"] == "done")
    assert redone == ["in/a/p1.png", "in/b/p2.png"]
    after = _stamps(photos / "out")
    assert after["p0.k8.png"] == before["p0.k8.png"] and after["p3.k8.png"] == before["p3.k8.png"]

    # other options: every file is redone, over the batch's own outputs, without --force
    code, fourth = _batch(capsys, "in", "-r", "--out-dir", "out", "-k", "8", "--dither", "fs")
    assert sorted(r["status"] for r in fourth) == ["done"] * 4 + ["failed"]


def test_an_output_the_manifest_does_not_know_is_not_overwritten(capsys, photos, monkeypatch):
    monkeypatch.chdir(photos)
    (photos / "in" / "a" / "bad.png").unlink()
    out = photos / "out" / "a"
    out.mkdir(parents=True)
    (out / "p0.k8.png").write_bytes(b"the user's own file")
    os.utime(out / "p0.k8.png", (1, 1))  # older than the input: not up to date
    code, records = _batch(capsys, "in", "-r", "--out-dir", "out", "-k", "8")
    assert code == 8
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["input"] for r in failed] == ["in/a/p0.png"] and "--force" in failed[0]["error"]
    assert (out / "p0.k8.png").read_bytes() == b"the user's own file"


def test_no_manifest_when_asked_and_none_must_be_local(capsys, photos, monkeypatch):
    monkeypatch.chdir(photos)
    (photos / "in" / "a" / "bad.png").unlink()
    code, _ = _batch(capsys, "in", "-r", "--out-dir", "out", "-k", "8", "--manifest", "none")
    assert code == 0 and not (photos / "out" / MANIFEST_NAME).exists()
    code = main(["compress", "in", "-r", "--out-dir", "out", "--manifest", "memory://m.jsonl"])
    assert code == 2 and "local path" in capsys.readouterr().err
    code, _ = _batch(capsys, "in", "-r", "--out-dir", "o2", "-k", "8", "--manifest", "m.jsonl")
    assert code == 0 and len(Manifest(photos / "m.jsonl").records()) == 4


def test_unchanged_needs_the_same_options_input_and_output(photos):
    src = photos / "in" / "a" / "p0.png"
    dst = photos / "p0.k8.png"
    record = run_task(Task(str(src), str(dst), str(photos)), {"n_colors": 8})
    assert unchanged(record | {"options_digest": "d"}, str(src), str(dst), "d")
    assert not unchanged(record | {"options_digest": "d"}, str(src), str(dst), "other")
    assert not unchanged(record | {"options_digest": "d"}, str(src), str(photos / "x.png"), "d")
    assert not unchanged(None, str(src), str(dst), "d")
    dst.write_bytes(b"shorter")
    assert not unchanged(record | {"options_digest": "d"}, str(src), str(dst), "d")


@pytest.fixture
def memory():
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


def _put(fs, path: str, seed: int) -> None:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 20, 3), np.uint8)).save(
        buffer, "PNG")
    fs.pipe(path, buffer.getvalue())


def test_urls_in_and_out_mirror_the_tree(capsys, memory, tmp_path):
    for i, name in enumerate(("x/a.png", "x/b.png", "x/sub/c.png")):
        _put(memory, f"/in/{name}", i)
    memory.pipe("/in/x/readme.txt", b"not an image")
    code, records = _batch(capsys, "memory://in/x", "-r", "--out-dir", "memory://out", "-k", "8")
    assert code == 0
    assert sorted(r["output"] for r in records) == [
        "memory://out/a.k8.png", "memory://out/b.k8.png", "memory://out/sub/c.k8.png"]
    for path in memory.find("/out"):
        with Image.open(memory.open(path)) as image:
            assert image.mode == "P"
    # a URL input to a local folder, with a manifest there: a rerun skips it
    code, records = _batch(capsys, "memory://in/x/a.png", "memory://in/x/b.png", "--out-dir",
                           str(tmp_path / "local"), "-k", "8")
    assert code == 0 and len(list((tmp_path / "local").glob("*.k8.png"))) == 2
    code, records = _batch(capsys, "memory://in/x/a.png", "memory://in/x/b.png", "--out-dir",
                           str(tmp_path / "local"), "-k", "8")
    assert [r["status"] for r in records] == ["skipped", "skipped"]


def test_file_urls_are_local_paths(capsys, photos):
    (photos / "in" / "a" / "bad.png").unlink()
    code, records = _batch(capsys, f"file://{photos}/in", "-r", "--out-dir",
                           f"file://{photos}/out", "-k", "8")
    assert code == 0 and len(records) == 4
    assert (photos / "out" / "b" / "c" / "p3.k8.png").is_file()
    assert (photos / "out" / MANIFEST_NAME).is_file()


def test_url_errors_are_one_line(capsys, memory):
    code = main(["compress", "memory://nothing/here.png", "-o", "memory://o.png"])
    assert code == 3 and "no such file" in capsys.readouterr().err
    code = main(["compress", "nosuchproto://a/b.png", "--out-dir", "memory://o"])
    err = capsys.readouterr().err
    assert code in (3, 10) and "Traceback" not in err and err.count("\n") == 1


def test_plans_with_urls_refuse_collisions_before_any_work(memory):
    _put(memory, "/in/a/p.png", 1)
    _put(memory, "/in/b/p.png", 2)
    files = expand_inputs(["memory://in/a/p.png", "memory://in/b/p.png"])
    with pytest.raises(errors.InvalidOptionError, match="would both be written"):
        plan_outputs(files, out_dir="memory://out", name_of=lambda p: PurePath(p).name)
    files = expand_inputs(["memory://in"], recursive=True)
    assert plan_outputs(files, out_dir="memory://out", name_of=lambda p: PurePath(p).name) == [
        "memory://out/a/p.png", "memory://out/b/p.png"]


def test_storage_basics(memory, tmp_path):
    assert storage.is_url("s3://bucket/key") and not storage.is_url("file:///tmp/x")
    assert storage.local_path("file:///tmp/a%20b.png") == "/tmp/a b.png"
    storage.write_bytes("memory://d/e/f.bin", b"abc")
    assert storage.read_bytes("memory://d/e/f.bin") == b"abc"
    assert storage.file_state("memory://d/e/f.bin")[0] == 3
    assert storage.file_state("memory://d/e/none") is None
    with pytest.raises(errors.OutputExistsError):
        storage.write_bytes("memory://d/e/f.bin", b"x")
    with pytest.raises(errors.InputNotFoundError):
        storage.read_bytes("memory://d/e/none")
    (tmp_path / "f").write_bytes(b"abc")
    assert storage.content_hash(b"abc") == storage.content_hash(tmp_path / "f")


def test_an_unreachable_scheduler_is_one_line_and_exit_13(capsys, photos, monkeypatch):
    from kmquant import executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 1)
    monkeypatch.chdir(photos)
    code = main(["compress", "in", "-r", "--out-dir", "out", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 13 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert err.count("\n") == 1 and not list((photos / "out").rglob("*.png"))
