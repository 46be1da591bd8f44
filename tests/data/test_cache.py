"""The preprocessed cache: keys, reuse, resume after a kill, shards, parallel == serial."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from drgrader.config import DataConfig
from drgrader.data import cache
from drgrader.data.cache import (
    INDEX_COLUMNS,
    build_cache,
    cache_dir_for,
    cache_file_stem,
    cache_key,
    load_cached,
    shard_of,
)
from drgrader.data.images import ImageReadError
from drgrader.data.photo import preprocess_file
from drgrader.synth import make_fundus

N_GOOD = 7


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> pd.DataFrame:
    """A manifest of small synthetic JPEG photos plus one corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_GOOD):
        rgb = make_fundus(i % 5, rng, height=200, aspect=("3:2", "4:3", "1:1")[i % 3])
        path = folder / f"{i}_left.jpeg"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        rows.append({"image_id": f"{i}_left", "path": str(path), "grade": i % 5})
    bad = folder / "broken.jpeg"
    bad.write_text("not a photo")
    rows.append({"image_id": "broken", "path": str(bad), "grade": 0})
    return pd.DataFrame(rows)


def config(tmp_path: Path, **preprocess) -> DataConfig:
    return DataConfig(image_size=48, cache_dir=tmp_path / "cache", preprocess=preprocess, workers=1)


def comparable(index: pd.DataFrame) -> pd.DataFrame:
    """The index without its cache folder, plus the cached pixels, for run-to-run comparison."""
    out = index.drop(columns="cache_path").copy()
    out["pixels"] = [hashlib.sha1(load_cached(p).tobytes()).hexdigest() if p else "" for p in index["cache_path"]]
    return out


def test_build_records_every_image_and_the_corrupt_one(tmp_path, photos):
    index = build_cache(photos, config(tmp_path), progress=False)
    assert list(index.columns) == INDEX_COLUMNS
    assert index["image_id"].tolist() == photos["image_id"].tolist()
    good = index[index["image_id"] != "broken"]
    assert good["ok"].all() and (good["error"] == "").all() and good["gradable"].all()
    assert (good["quality_score"].between(0.5, 1.0)).all()
    assert set(zip(good["orig_height"], good["orig_width"])) == {(200, 300), (200, 267), (200, 200)}
    for path in good["cache_path"]:
        image = load_cached(path)
        assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    broken = index.set_index("image_id").loc["broken"]
    assert not broken["ok"] and not broken["gradable"] and broken["cache_path"] == ""
    assert "not an image" in broken["error"]
    settings = json.loads((cache_dir_for(config(tmp_path)) / "settings.json").read_text())
    assert settings["image_size"] == 48 and settings["preprocess"]["crop"] is True


def test_second_build_reuses_everything(tmp_path, photos, monkeypatch):
    cfg = config(tmp_path)
    first = build_cache(photos, cfg, progress=False)

    def no_work(task):
        raise AssertionError(f"image {task[0]} was processed again")

    monkeypatch.setattr(cache, "_cache_one", no_work)
    second = build_cache(photos, cfg, progress=False)
    pd.testing.assert_frame_equal(first, second)


def test_settings_change_gives_a_new_cache(tmp_path, monkeypatch):
    base = config(tmp_path)
    assert cache_key(base) == cache_key(config(tmp_path))
    assert len(cache_key(base)) == 12
    others = [
        base.model_copy(update={"image_size": 64}),
        config(tmp_path, ben_graham=True),
        config(tmp_path, ben_graham_sigma=5.0),
        config(tmp_path, mask=False),
        config(tmp_path, clahe=True),
    ]
    keys = {cache_key(c) for c in others}
    assert len(keys) == len(others) and cache_key(base) not in keys
    # Settings that do not change the pixels do not change the key.
    assert cache_key(base.model_copy(update={"workers": 4, "limit": 3})) == cache_key(base)
    assert cache_dir_for(base) == tmp_path / "cache" / cache_key(base)
    monkeypatch.chdir(tmp_path)
    unset = DataConfig(image_size=48)
    assert cache_dir_for(unset) == tmp_path / ".drgrader-cache" / cache_key(unset)
    assert cache_dir_for(unset, tmp_path / "data") == tmp_path / "data" / ".drgrader-cache" / cache_key(unset)


def test_resume_after_a_killed_run_equals_an_uninterrupted_run(tmp_path, photos):
    full = build_cache(photos, config(tmp_path / "a"), progress=False)

    cfg = config(tmp_path / "b")
    build_cache(photos.iloc[:3], cfg, progress=False)  # the run got this far ...
    out = cache_dir_for(cfg)
    # ... then was killed: mid-write of an image (a temporary file), and between the image
    # and its index row (a half-written image with no row), and a row whose image is gone.
    file = {row.image_id: f"{cache_file_stem(row.image_id, row.path)}.npy" for row in photos.itertuples()}
    (out / ".3_left.npy.abc123.tmp").write_bytes(b"\x93NUMPY partial")
    (out / file["4_left"]).write_bytes(b"\x93NUMPY partial")
    (out / file["0_left"]).unlink()
    resumed = build_cache(photos, cfg, progress=False)
    pd.testing.assert_frame_equal(comparable(resumed), comparable(full))
    assert (out / ".3_left.npy.abc123.tmp").exists()  # fresh temp files may be another shard's

    # Temporary files older than an hour are leftovers and get cleaned up.
    stale = time.time() - 2 * cache.STALE_TEMP_SECONDS
    os.utime(out / ".3_left.npy.abc123.tmp", (stale, stale))
    build_cache(photos, cfg, progress=False)
    assert not (out / ".3_left.npy.abc123.tmp").exists()


def test_a_truncated_image_from_an_os_crash_is_redone(tmp_path, photos, monkeypatch):
    cfg = config(tmp_path)
    build_cache(photos, cfg, progress=False)
    path = Path(build_cache(photos, cfg, progress=False).loc[2, "cache_path"])
    path.write_bytes(path.read_bytes()[:100])  # the row exists, the data did not reach the disk
    done = []
    real = cache._cache_one
    monkeypatch.setattr(cache, "_cache_one", lambda task: done.append(task[0]) or real(task))
    index = build_cache(photos, cfg, progress=False)
    assert done == ["2_left"]
    assert load_cached(index.loc[2, "cache_path"]).shape == (48, 48, 3)


def test_another_photo_under_the_same_id_is_not_served_from_the_cache(tmp_path, photos):
    cfg = config(tmp_path)
    build_cache(photos.iloc[:2], cfg, progress=False)
    swapped = photos.iloc[:2].copy()
    swapped["path"] = photos["path"].iloc[[5, 6]].to_numpy()  # e.g. another data set's "0_left"
    index = build_cache(swapped, cfg, progress=False)
    renamed = photos.iloc[[5, 6]].assign(image_id=["0_left", "1_left"])
    expected = build_cache(renamed, config(tmp_path / "x"), progress=False)
    assert comparable(index)["pixels"].tolist() == comparable(expected)["pixels"].tolist()


def test_a_photo_replaced_by_another_of_the_same_size_is_redone(tmp_path):
    # Uncompressed photos of one camera all have one size: only the file's time tells them apart.
    rng = np.random.default_rng(1)
    path = tmp_path / "3_left.bmp"
    first, second = (cv2.cvtColor(make_fundus(g, rng, height=120), cv2.COLOR_RGB2BGR) for g in (0, 4))
    cv2.imwrite(str(path), first)
    manifest = pd.DataFrame([{"image_id": "3_left", "path": str(path), "grade": 0}])
    before = comparable(build_cache(manifest, config(tmp_path), progress=False))["pixels"].item()
    size = path.stat().st_size
    cv2.imwrite(str(path), second)  # a corrected photo, same name and size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert path.stat().st_size == size
    after = comparable(build_cache(manifest, config(tmp_path), progress=False))["pixels"].item()
    fresh = comparable(build_cache(manifest, config(tmp_path / "fresh"), progress=False))["pixels"].item()
    assert after == fresh != before


def test_shards_partition_the_manifest(tmp_path, photos):
    cfg = config(tmp_path)
    parts = [build_cache(photos, cfg, shard=(i, 3), progress=False) for i in range(3)]
    ids = [i for part in parts for i in part["image_id"]]
    assert sorted(ids) == sorted(photos["image_id"]) and len(ids) == len(set(ids))
    assert all(len(part) < len(photos) for part in parts)
    # Together the shards built the whole cache: a full build now does no work.
    together = pd.concat(parts).set_index("image_id").loc[photos["image_id"]].reset_index()
    pd.testing.assert_frame_equal(build_cache(photos, cfg, progress=False), together)
    # The shard of an id is a fixed function of the id (same on every machine and run).
    assert shard_of("10_left", 4) == int(hashlib.sha1(b"10_left").hexdigest()[:12], 16) % 4
    with pytest.raises(ValueError, match="shard"):
        build_cache(photos, cfg, shard=(3, 3), progress=False)


def test_parallel_equals_serial(tmp_path, photos):
    serial = build_cache(photos, config(tmp_path / "serial"), workers=1, progress=False)
    parallel = build_cache(photos, config(tmp_path / "parallel"), workers=2, progress=False)
    pd.testing.assert_frame_equal(comparable(serial), comparable(parallel))


def test_manifest_errors_name_the_problem(tmp_path, photos):
    with pytest.raises(ValueError, match="lacks column"):
        build_cache(photos.drop(columns="path"), config(tmp_path), progress=False)
    twice = pd.concat([photos, photos.iloc[[1]]])
    with pytest.raises(ValueError, match="duplicated image_id.*1_left"):
        build_cache(twice, config(tmp_path), progress=False)
    no_path = photos.iloc[:1].assign(path=[None])
    index = build_cache(no_path, config(tmp_path), progress=False)
    assert not index["ok"].iloc[0] and "no image path" in index["error"].iloc[0]


def test_unusual_ids_get_safe_distinct_file_names():
    assert cache_file_stem("123_left", "/d/123_left.jpeg").startswith("123_left-")
    odd = ["a/b", "a_b", "../x", "settings", "", "ümlaut id"]
    stems = [cache_file_stem(i, "/d/x.jpeg") for i in odd]
    assert len(set(stems)) == len(odd)
    assert all("/" not in s and not s.startswith(".") and s for s in stems)
    # one id from two data sets: two files
    assert cache_file_stem("1_left", "/a/1_left.jpeg") != cache_file_stem("1_left", "/b/1_left.jpeg")


def test_two_data_sets_with_the_same_ids_in_one_cache_never_share_a_file(tmp_path, photos):
    # Before (probe 25): files were named by image id alone. A training of set A read the .npy files
    # that `preprocess` of set B (the same names, other photos) rewrote under it: B's pixels under A's labels.
    cfg = config(tmp_path)
    a = build_cache(photos.iloc[:2], cfg, progress=False)
    other = photos.iloc[:2].assign(path=photos["path"].iloc[[5, 6]].to_numpy())  # set B's 0_left, 1_left
    b = build_cache(other, cfg, progress=False)
    assert set(a["cache_path"]).isdisjoint(b["cache_path"])
    expected = build_cache(photos.iloc[:2], config(tmp_path / "alone"), progress=False)
    assert comparable(a)["pixels"].tolist() == comparable(expected)["pixels"].tolist()  # A's files untouched by B


def test_load_cached_formats_and_errors(tmp_path):
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    np.save(tmp_path / "x.npy", image)
    assert np.array_equal(load_cached(tmp_path / "x.npy"), image)
    cv2.imwrite(str(tmp_path / "x.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert np.array_equal(load_cached(tmp_path / "x.png"), image)
    with pytest.raises(ImageReadError, match="rebuild the cache"):
        load_cached(tmp_path / "missing.npy")
    np.save(tmp_path / "f.npy", image.astype(np.float32))
    with pytest.raises(ImageReadError, match="not RGB uint8"):
        load_cached(tmp_path / "f.npy")


def test_small_fundus_in_a_big_frame_is_decoded_large_enough(tmp_path):
    # 2400 x 1600 frame, fundus radius 150: the first decode (short side >= 1.25 * 256 = 320,
    # i.e. 1/4 scale) leaves a 75 px circle, so the photo is decoded again at full size.
    img = np.zeros((1600, 2400, 3), np.uint8)
    cv2.circle(img, (1200, 800), 150, (200, 110, 50), -1)
    cv2.line(img, (1100, 800), (1300, 820), (90, 30, 10), 3)
    path = tmp_path / "small.jpeg"
    cv2.imwrite(str(path), img)
    result = preprocess_file(path, DataConfig().preprocess, 256)
    assert result.image.shape == (256, 256, 3)
    assert 2 * result.circle.r >= 256  # the crop was shrunk, never enlarged
    assert (result.orig_height, result.orig_width) == (1600, 2400)
