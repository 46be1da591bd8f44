"""Bad input never crashes a run: odd image files, broken label files and impossible configs,
fed through the real pipeline (build_cache, ``drgrader preprocess``, ``train``, ``predict``) and
the command line. Each case checks the outcome a user sees: a message naming the file, row or
field, the rest of the batch processed, a count of what was skipped, and exit code 2 only when
nothing sensible can continue.

The label and config cases call ``drgrader.cli.main`` in this process (an uncaught exception
would fail the test, exactly where a subprocess would print a Traceback); cases whose output
goes through Python's warnings, and the memory check, run ``python -m drgrader`` for real.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from dicom_files import write_dicom
from PIL import Image, TiffImagePlugin

from drgrader.cli import main as cli_main
from drgrader.config import DataConfig, save_config
from drgrader.data.cache import build_cache, load_cached
from drgrader.data.fundus import circle_mask, find_fundus
from drgrader.data.image_files import ImageReadError
from drgrader.data.images import read_image
from drgrader.data.quality import NOT_COLOUR
from drgrader.synth import make_dataset, make_fundus

SRC = Path(__file__).resolve().parents[1] / "src"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def cli_env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    env.pop("DRGRADER_RUN_DIR", None)  # set by in-process training runs of other tests
    return env


def run_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drgrader", *map(str, args)], capture_output=True,
                          text=True, env=cli_env(), timeout=timeout)


def run_measured(argv: list[str], workdir: Path) -> tuple[int, str, str, int]:
    """Run a command to its end; (exit code, stdout, stderr, that process's peak RSS in MB).

    ``os.wait4`` reaps this one child and returns its own resource usage (RUSAGE_CHILDREN would
    be the maximum over every child the test process ever had)."""
    out_file, err_file = workdir / "measured.out", workdir / "measured.err"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=cli_env())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out_file.read_text(), err_file.read_text(), usage.ru_maxrss // 1024


# ------------------------------------------------------------------ the odd images
def png_bomb(path: Path, width: int, height: int) -> None:
    """A valid 8-bit greyscale PNG of width x height black pixels: a few hundred KB on disk,
    width * height bytes (and 3x that as RGB) once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    block = bytes((width + 1) * 100)  # 100 rows: filter byte 0 + black pixels
    idat = b"".join(compressor.compress(block) for _ in range(height // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def write_zoo(folder: Path) -> np.ndarray:
    """Every odd image file the pipeline must survive, next to two good references.
    Returns the RGB fundus the good and re-encoded files were made from."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = make_fundus(2, np.random.default_rng(11), height=192)  # 192 x 288
    Image.fromarray(rgb).save(folder / "good.png")
    Image.fromarray(rgb).save(folder / "good.jpeg", quality=95)
    jpeg = (folder / "good.jpeg").read_bytes()
    (folder / "trunc.jpeg").write_bytes(jpeg[: len(jpeg) // 2])
    # Damaged, not cut short: a stray restart marker in the middle of the scan. Pillow decodes it
    # without a word (the lower half grey); libjpeg warns "premature end of data segment".
    middle = (jpeg.index(b"\xff\xda") + len(jpeg)) // 2
    (folder / "damaged.jpeg").write_bytes(jpeg[:middle] + b"\xff\xd3" + jpeg[middle:])
    (folder / "empty.jpeg").write_bytes(b"")
    (folder / "notes.jpeg").write_text("patient list, not a photo\n" * 20)
    # Transparent surround stored as white: only compositing on black gives the fundus back.
    inside = circle_mask(rgb.shape, find_fundus(rgb))
    rgba = np.dstack([np.where(inside[..., None], rgb, 255), np.where(inside, 255, 0)]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(folder / "rgb16.png"), bgr.astype(np.uint16) * 257)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey).save(folder / "grey.png")
    assert cv2.imwrite(str(folder / "grey16.png"), grey.astype(np.uint16) * 257)
    # A camera's raw export: 12-bit data in 16-bit files (Pillow alone keeps the top byte: black).
    assert cv2.imwrite(str(folder / "rgb12.tif"), np.round(bgr * (4095 / 255)).astype(np.uint16))
    assert cv2.imwrite(str(folder / "grey12.png"), np.round(grey * (4095 / 255)).astype(np.uint16))
    # Red-free photos as cameras export them: grey with alpha, grey in RGB JPEG, a MONOCHROME2 DICOM.
    Image.fromarray(np.dstack([grey, np.where(inside, 255, 0).astype(np.uint8)]), "LA").save(folder / "grey_alpha.png")
    Image.fromarray(np.dstack([grey] * 3)).save(folder / "grey_rgb.jpeg", quality=90)
    write_dicom(folder / "grey_dicom.dcm", grey, photometric="MONOCHROME2")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpeg", quality=95)
    # Stored lying on its side (as a phone saves it) with EXIF orientation 6: "rotate 90 CW".
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(folder / "exif.jpeg", exif=exif, quality=95)
    Image.fromarray(cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)).save(folder / "tiny.jpeg")
    png_bomb(folder / "huge.png", 15000, 10000)  # over drgrader's limit (1e8 pixels)
    png_bomb(folder / "huger.png", 20000, 10000)  # over Pillow's own bomb limit too
    Image.fromarray(np.zeros((192, 288, 3), np.uint8)).save(folder / "black.jpeg")
    street = cv2.GaussianBlur(np.random.default_rng(1).integers(60, 200, (200, 300, 3), dtype=np.uint8), (0, 0), 3)
    Image.fromarray(street).save(folder / "street.jpeg")
    return rgb


UNREADABLE = {
    "trunc": "corrupt or truncated image data",
    "damaged": "corrupt or truncated image data: Corrupt JPEG data: premature end of data segment",
    "empty": "empty file (0 bytes)",
    "notes": "not an image file",
    "tiny": "too small: 32x32 (need at least 64 px per side)",
    "huge": "image too large: 15000x10000 = 150,000,000 pixels > limit 100,000,000",
    "huger": "image too large",
}
UNGRADABLE = {"black": "no fundus detected", "street": "no fundus detected",
              **{name: NOT_COLOUR for name in ("grey", "grey16", "grey12", "grey_alpha", "grey_rgb", "grey_dicom")}}
ODD_USABLE = ["alpha", "rgb16", "rgb12", "cmyk", "exif"]
USABLE = ["good", "good_png", *ODD_USABLE]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    rgb = write_zoo(folder)
    return folder, rgb


@pytest.fixture(scope="module")
def zoo_index(zoo, tmp_path_factory):
    """build_cache over the zoo (in this process): one index row per file."""
    folder, _ = zoo
    files = sorted(p for p in folder.iterdir())
    ids = [p.stem if p.name != "good.png" else "good_png" for p in files]
    manifest = pd.DataFrame({"image_id": ids, "path": [str(p) for p in files]})
    cfg = DataConfig(image_size=64, workers=1, cache_dir=tmp_path_factory.mktemp("zoo-cache"))
    return build_cache(manifest, cfg, progress=False).set_index("image_id")


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_image_becomes_an_error_row(zoo_index, name):
    row = zoo_index.loc[name]
    assert not row["ok"] and row["cache_path"] == ""
    assert UNREADABLE[name] in row["error"]


def test_a_damaged_jpeg_that_pillow_decodes_silently_is_unreadable(zoo):
    folder, rgb = zoo
    with Image.open(folder / "damaged.jpeg") as im:  # why the check exists: Pillow says nothing
        silent = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert np.abs(silent - rgb).mean() > 20  # and what it gives is not the photo
    with pytest.raises(ImageReadError, match="premature end of data segment"):
        read_image(folder / "damaged.jpeg", min_side=64)
    for name in ("good", "cmyk", "exif"):  # sound JPEGs (CMYK too) still decode
        assert read_image(folder / f"{name}.jpeg").shape[2] == 3


def test_a_png_whose_checksum_fails_is_unreadable_though_pillow_decodes_it(zoo, tmp_path):
    folder, rgb = zoo
    png = (folder / "good.png").read_bytes()
    start = png.index(b"IDAT") + 4
    for offset in range(start + 100, len(png), 97):  # the first flipped byte that zlib decodes on
        damaged = png[:offset] + bytes([png[offset] ^ 0xFF]) + png[offset + 1:]
        try:
            with Image.open(io.BytesIO(damaged)) as im:
                silent = np.asarray(im.convert("RGB"), dtype=np.int16)
        except OSError:
            continue
        if np.abs(silent - rgb).mean() > 1:
            break
    else:
        pytest.fail("no silently decoded damage found")
    (tmp_path / "damaged.png").write_bytes(damaged)
    with pytest.raises(ImageReadError, match=r"corrupt or truncated image data: broken PNG file \(bad header checksum"):
        read_image(tmp_path / "damaged.png")
    assert np.array_equal(read_image(folder / "good.png"), rgb)


def test_a_multi_page_tiff_is_refused_not_graded_by_its_first_page(zoo, tmp_path):
    _, rgb = zoo
    Image.fromarray(rgb).save(tmp_path / "stack.tiff", save_all=True, append_images=[Image.fromarray(255 - rgb)])
    with pytest.raises(ImageReadError, match=r"multi-page TIFF \(2 pages\) where one photo is expected"):
        read_image(tmp_path / "stack.tiff")
    Image.fromarray(rgb).save(tmp_path / "one.tiff")
    assert np.array_equal(read_image(tmp_path / "one.tiff"), rgb)  # one page: the photo
    preview = Image.fromarray(np.ascontiguousarray(rgb[::4, ::4]))
    marked = TiffImagePlugin.ImageFileDirectory_v2()
    marked[254] = 1  # NewSubfileType: a reduced-resolution copy of another page (a camera's preview)
    preview.encoderinfo = {"tiffinfo": marked}
    Image.fromarray(rgb).save(tmp_path / "with-preview.tiff", save_all=True, append_images=[preview])
    assert np.array_equal(read_image(tmp_path / "with-preview.tiff"), rgb)  # the photo, its preview aside


@pytest.mark.parametrize("name", sorted(UNGRADABLE))
def test_non_fundus_frame_is_cached_but_flagged_ungradable(zoo_index, name):
    row = zoo_index.loc[name]
    assert row["ok"] and row["error"] == ""
    assert not row["gradable"] and row["quality_reason"] == UNGRADABLE[name]


def test_every_other_format_is_usable(zoo_index):
    rows = zoo_index.loc[USABLE]
    assert rows["ok"].all() and rows["gradable"].all(), rows[["error", "quality_reason"]]
    assert len(zoo_index) == len(USABLE) + len(UNREADABLE) + len(UNGRADABLE)


def cached(index, name) -> np.ndarray:
    return load_cached(index.loc[name, "cache_path"]).astype(np.int16)


def test_lossless_variants_give_the_same_model_input(zoo_index):
    reference = cached(zoo_index, "good_png")
    # 16-bit RGB scaled back to 8 bits is the same photo, pixel for pixel.
    assert np.array_equal(cached(zoo_index, "rgb16"), reference)
    # 12-bit data in a 16-bit file is scaled by the range it uses (before, probe 25: "no fundus detected").
    assert np.array_equal(cached(zoo_index, "rgb12"), reference)
    assert np.array_equal(cached(zoo_index, "grey12"), cached(zoo_index, "grey"))
    # Alpha composited on black: the white transparent surround disappears.
    assert np.abs(cached(zoo_index, "alpha") - reference).mean() < 0.5
    # Greyscale (8- and 16-bit) becomes three equal channels of the same grey image.
    grey = cached(zoo_index, "grey")
    assert np.array_equal(cached(zoo_index, "grey16"), grey)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    expected_grey = cv2.cvtColor(reference.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.int16)
    assert np.abs(grey[..., 0] - expected_grey).mean() < 1.5


def test_cmyk_and_exif_rotated_jpegs_match_the_plain_jpeg(zoo_index):
    reference = cached(zoo_index, "good")
    assert np.abs(cached(zoo_index, "cmyk") - reference).mean() < 2.0
    # Rotated upright by its EXIF tag: same picture, and the size as displayed (not as stored).
    assert np.abs(cached(zoo_index, "exif") - reference).mean() < 2.0
    assert tuple(zoo_index.loc["exif", ["orig_height", "orig_width"]]) == (192, 288)


# --------------------------------------------- a data set mixing good and odd images
@pytest.fixture(scope="module")
def mixed(zoo, tmp_path_factory):
    """Kaggle layout: 8 synthetic patients (16 good photos) plus every odd file of the zoo."""
    folder, _ = zoo
    root = tmp_path_factory.mktemp("mixed") / "data"
    make_dataset(root, 8, seed=21, height=192, progress=False)
    odd = sorted({*UNREADABLE, *UNGRADABLE, *ODD_USABLE})
    with open(root / "trainLabels.csv", "a") as fh:
        for i, name in enumerate(odd):
            source = next(folder.glob(f"{name}.*"))
            shutil.copy(source, root / "images" / source.name)
            fh.write(f"{name},{i % 3}\n")
    return root


def test_preprocess_command_skips_bad_files_with_bounded_memory(mixed, tmp_path):
    """`drgrader preprocess` on the mixed set: exit 0, every unreadable file named with its
    reason, the rest cached; the decompression bombs are refused before decoding, so the
    process never holds the 0.6-0.8 GB their pixels would take."""
    cfg = tiny_config(mixed, **{"data.cache_dir": str(tmp_path / "cache")})
    save_config(cfg, tmp_path / "cfg.yaml")
    argv = [sys.executable, "-m", "drgrader", "preprocess", str(tmp_path / "cfg.yaml"), "--workers", "1"]
    code, out, err, peak_mb = run_measured(argv, tmp_path)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    # Baseline: the same interpreter after the same imports, doing nothing.
    imports = "import drgrader.cli, drgrader.errors, drgrader.data.cache, drgrader.data.manifest"
    _, _, _, baseline_mb = run_measured([sys.executable, "-c", imports], tmp_path)
    assert peak_mb < baseline_mb + 300, (peak_mb, baseline_mb)
    total = 16 + len(ODD_USABLE) + len(UNREADABLE) + len(UNGRADABLE)
    assert f"preprocessed {total - len(UNREADABLE)}/{total} images; {len(UNREADABLE)} unreadable" in out
    for name, reason in UNREADABLE.items():
        assert f"unreadable: {name}: {reason}" in out


def test_training_goes_on_with_the_good_images(mixed, tmp_path):
    from drgrader.workflows.train import train

    run = train(tiny_config(mixed, **{"train.epochs": 1, "eval.bootstrap": 0}), out=tmp_path / "run", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["skipped"]["unreadable_image"] == len(UNREADABLE)
    summary = metrics["data"]["summary"]
    assert summary["images"] == 16 + len(ODD_USABLE) + len(UNGRADABLE)  # what training and evaluation used
    assert summary["gradability"]["ungradable"] == len(UNGRADABLE)
    assert summary["gradability"]["reasons"] == {"no fundus detected": 2, NOT_COLOUR: len(UNGRADABLE) - 2}
    log = (run / "train.log").read_text()
    for name in UNREADABLE:
        assert f"skipped unreadable image {mixed / 'images'}/{name}." in log


def test_predict_command_reports_every_file(zoo, tiny_bundle, tmp_path):
    folder, _ = zoo
    res = run_cli("predict", tiny_bundle, folder, "--out", tmp_path / "pred.csv")
    assert res.returncode == 0, res.stderr[-2000:]
    pred = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False).set_index("image_id")
    assert len(pred) == len(USABLE) + len(UNREADABLE) + len(UNGRADABLE)
    for name, reason in UNREADABLE.items():
        assert reason in pred.loc[name, "error"] and pred.loc[name, "grade"] == ""
    for name, reason in UNGRADABLE.items():
        assert pred.loc[name, "gradable"] == "False" and pred.loc[name, "quality_reason"] == reason
    good = pred.drop(index=list(UNREADABLE))
    assert (good["error"] == "").all() and good["grade"].astype(int).between(0, 4).all()
    n_ok = len(pred) - len(UNREADABLE)
    assert f"predicted {n_ok} images ({len(UNREADABLE)} unreadable, {len(UNGRADABLE)} flagged ungradable)" in res.stderr


@pytest.mark.skipif(not (SHARED / "eyepacs-256").is_dir(), reason="needs ../shared/data")
def test_a_greyscale_copy_of_a_real_photo_is_ungradable_wherever_it_is_graded(tiny_bundle, tmp_path):
    # Red-free photos lose the red lesions: an urgent eye (10131_left, grade 3) graded grey came out grade 0.
    from fastapi.testclient import TestClient

    import drgrader
    from drgrader.inference.serve import create_app
    from drgrader.workflows.predict import predict_command

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(SHARED / "eyepacs-256" / "images" / "10131_left.jpeg", folder / "10131_left.jpeg")
    grey = Image.open(folder / "10131_left.jpeg").convert("L")
    grey.save(folder / "10131_right.jpeg", quality=95)
    write_dicom(folder / "10132_left.dcm", np.asarray(grey), photometric="MONOCHROME2")
    rows = pd.read_csv(predict_command(tiny_bundle, [folder], out=tmp_path / "p.csv"), keep_default_na=False)
    assert rows.set_index("image_id")[["gradable", "quality_reason"]].to_dict("index") == {
        "10131_left": {"gradable": True, "quality_reason": ""},
        "10131_right": {"gradable": False, "quality_reason": NOT_COLOUR},
        "10132_left": {"gradable": False, "quality_reason": NOT_COLOUR},
    }
    photos, _ = drgrader.grade(tiny_bundle, [grey], names=["10131_left"])
    assert photos["quality_reason"].tolist() == [NOT_COLOUR]
    with TestClient(create_app(tiny_bundle)) as client:
        body = client.post("/api/predict", files={"file": ("10131_right.jpeg", (folder / "10131_right.jpeg").read_bytes())}).json()
    assert body["gradable"] is False and NOT_COLOUR in body["warning"]


# --------------------------------------------------------------------- label files
def labelled_set(root: Path, labels: str | bytes, extra_files: tuple[str, ...] = ()) -> Path:
    """A Kaggle-layout folder (4 tiny photos) with the given trainLabels.csv; returns a config."""
    photo = cv2.imencode(".jpeg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    (root / "images").mkdir(parents=True)
    for name in ("1_left", "1_right", "2_left", "2_right", *extra_files):
        (root / "images" / f"{name}.jpeg").write_bytes(photo)
    data = labels.encode("utf-8") if isinstance(labels, str) else labels
    (root / "trainLabels.csv").write_bytes(data)
    cfg = root.parent / "exp.yaml"
    cfg.write_text(f"data:\n  root: {root}\n  format: kaggle\n  cache_dir: {root.parent / 'cache'}\n")
    return cfg


GOOD = "image,level\n1_left,0\n1_right,1\n2_left,2\n2_right,0\n"


@pytest.mark.parametrize(
    "labels, message",
    [
        ("image,grade\n1_left,0\n", "error: trainLabels.csv: missing column(s) ['level']"),
        (GOOD.replace("2_left,2", "2_left,-1"), "error: trainLabels.csv row 3 (image '2_left'): grade '-1' is not one of 0, 1, 2, 3, 4"),
        (GOOD.replace("2_left,2", "2_left,5"), "error: trainLabels.csv row 3 (image '2_left'): grade '5' is not one of 0, 1, 2, 3, 4"),
        (GOOD.replace("2_left,2", "2_left,"), "error: trainLabels.csv row 3 (image '2_left'): grade is empty"),
        (GOOD + "1_right,1\n", "error: trainLabels.csv row 5 (image '1_right'): image id '1_right' appears twice "
                               "(also trainLabels.csv row 2 (image '1_right'))"),
        (GOOD + "3_left,1\n", "error: trainLabels.csv row 5 (image '3_left'): image file not found: no file '3_left'"),
        (b"image,level\n1_left,0\x00\x01\n", "error: trainLabels.csv is not a text CSV file"),
    ],
    ids=["missing-column", "grade-minus-1", "grade-5", "empty-grade", "duplicate-id", "id-without-file", "binary"],
)
def test_bad_label_file_exits_2_naming_file_and_row(tmp_path, capsys, labels, message):
    cfg = labelled_set(tmp_path / "data", labels)
    assert cli_main(["data", "summary", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1  # one line, no traceback


def test_train_command_reports_bad_labels_the_same_way(tmp_path, capsys):
    cfg = labelled_set(tmp_path / "data", GOOD.replace("2_left,2", "2_left,5"))
    assert cli_main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "error: trainLabels.csv row 3 (image '2_left'): grade '5' is not one of 0, 1, 2, 3, 4" in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_grade_written_as_2_point_0_is_accepted(tmp_path, capsys):
    cfg = labelled_set(tmp_path / "data", GOOD.replace("2_left,2", "2_left,2.0"))
    assert cli_main(["data", "summary", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "| 2 moderate | 1 (25.0%) |" in out


def test_rows_without_files_are_skipped_and_counted_when_asked(tmp_path, capsys):
    cfg = labelled_set(tmp_path / "data", GOOD + "3_left,1\n3_right,4\n")
    assert cli_main(["data", "summary", str(cfg), "--set", "data.skip_missing=true"]) == 0
    out = capsys.readouterr().out
    assert "4 images of 2 patients" in out and "Left out: 2 missing image." in out


def test_files_without_a_label_row_are_counted(tmp_path, capsys):
    cfg = labelled_set(tmp_path / "data", GOOD, extra_files=("9_left", "9_right", "10_left"))
    assert cli_main(["data", "summary", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "4 images of 2 patients" in out and "Left out: 3 unlabelled files." in out


def test_non_utf8_label_file_is_read_as_latin1_with_a_warning(tmp_path):
    """Real subprocess: the warning reaches stderr, and the accented id finds its file."""
    cfg = labelled_set(tmp_path / "data", (GOOD + "José_left,3\n").encode("latin-1"))
    (tmp_path / "data" / "images" / "José_left.jpeg").write_bytes((tmp_path / "data" / "images" / "1_left.jpeg").read_bytes())
    res = run_cli("data", "summary", cfg)
    assert res.returncode == 0, res.stderr
    assert "trainLabels.csv: 1 line(s) are not valid UTF-8 (line 6): read as Windows-1252 / Latin-1" in res.stderr
    # one WARNING line like every other (before: Python's "...label_files.py:156: UserWarning" and its source line)
    assert [line for line in res.stderr.splitlines() if "not valid UTF-8" in line][0].startswith("WARNING ")
    assert "Traceback" not in res.stderr and "UserWarning" not in res.stderr
    assert "5 images of 3 patients" in res.stdout
    assert "| 3 severe NPDR | 1 (20.0%) |" in res.stdout


def test_data_summary_survives_a_decompression_bomb(zoo, tmp_path, capsys):
    folder, _ = zoo
    cfg = labelled_set(tmp_path / "data", GOOD + "huger,0\n")
    shutil.copy(folder / "huger.png", tmp_path / "data" / "images" / "huger.png")
    assert cli_main(["data", "summary", str(cfg)]) == 0
    assert "Unreadable: 1 (huger)." in capsys.readouterr().out


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "yaml_text, overrides, message",
    [
        ("train:\n  epochs: many\n", [], "train.epochs: Input should be a valid integer"),
        ("", ["train.epochs=-1"], "train.epochs: Input should be greater than or equal to 1 (got -1)"),
        ("", ["data.image_size=0"], "data.image_size: Input should be greater than or equal to 16 (got 0)"),
        ("", ["data.imagesize=64"], "data.imagesize: unknown field"),
        ("", ["data.split={val: 0.6, test: 0.5}"], "split.val + split.test must be < 1"),
        ("", ["data.root=/no/such/folder"], "data folder not found: /no/such/folder (data.root)"),
        ("", ["data.format=csv", "data.labels=nolabels.csv"], "nolabels.csv (data.labels)"),
        ("", ["data.format=csv", "data.labels=trainLabels.csv", "data.images=nope"], "nope (data.images)"),
        ("", ["data.split.file=/no/split.csv"], "split file not found: /no/split.csv"),
        ("", ["data.split.method=official"], "split.method=official, but the data set ['kaggle'] publishes no split"),
    ],
    ids=["wrong-type", "negative-epochs", "image-size-0", "unknown-key", "split-fractions", "missing-root",
         "missing-labels", "missing-images", "missing-split-file", "impossible-split"],
)
def test_bad_config_exits_2_naming_the_field(tmp_path, capsys, yaml_text, overrides, message):
    cfg = labelled_set(tmp_path / "data", GOOD)
    cfg.write_text(cfg.read_text() + yaml_text)
    argv = ["data", "summary", str(cfg)] + [a for o in overrides for a in ("--set", o)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


def test_missing_config_file(tmp_path, capsys):
    assert cli_main(["preprocess", str(tmp_path / "nope.yaml")]) == 2
    assert f"error: config file not found: {tmp_path / 'nope.yaml'}" in capsys.readouterr().err


def test_cache_dir_that_is_a_file(tmp_path, capsys):
    cfg = labelled_set(tmp_path / "data", GOOD)
    (tmp_path / "taken").write_text("a file, not a folder")
    assert cli_main(["preprocess", str(cfg), "--set", f"data.cache_dir={tmp_path / 'taken'}"]) == 2
    err = capsys.readouterr().err
    assert "cannot create the cache folder" in err and "(data.cache_dir)" in err


def test_unknown_backbone_names_the_field(tmp_path, capsys):
    cfg = labelled_set(tmp_path / "data", GOOD)
    for k, photo in enumerate(sorted((tmp_path / "data" / "images").iterdir())):  # distinct: two patients, not one
        photo.write_bytes(cv2.imencode(".jpeg", np.full((64, 64, 3), 60 + 20 * k, np.uint8))[1].tobytes())
    argv = ["train", str(cfg), "--out", str(tmp_path / "run"), "--set", "model.backbone=resnet_nonexistent",
            "--set", "data.image_size=16", "--set", "data.workers=1",
            "--set", "data.split.val=0.5", "--set", "data.split.test=0"]  # two patients: one for validation
    assert cli_main(argv) == 2
    assert "error: model.backbone='resnet_nonexistent' is not a timm model" in capsys.readouterr().err
