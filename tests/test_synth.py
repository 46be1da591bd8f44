"""Tests of the synthetic fundus generator (drgrader.synth). Small images keep them fast."""

from __future__ import annotations

import csv
import math

import cv2
import numpy as np
import pytest

from drgrader.synth import dataset as synth_dataset
from drgrader.synth import make_dataset, make_fundus

H = 192


def _render(grade: int, seed: int, **kwargs) -> np.ndarray:
    return make_fundus(grade, np.random.default_rng(seed), height=H, **kwargs)


def _fundus_mask(img: np.ndarray) -> np.ndarray:
    return img.max(axis=2) > 25


def _read_labels(path) -> list[dict]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["image", "level"]
        return list(reader)


def _folder_bytes(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------ make_fundus
@pytest.mark.parametrize("aspect, width", [("3:2", 288), ("4:3", 256), ("1:1", 192)])
def test_frame_has_the_claimed_aspect_ratio(aspect, width):
    img = _render(0, 1, aspect=aspect)
    assert img.shape == (H, width, 3)
    assert img.dtype == np.uint8


@pytest.mark.parametrize("aspect", ["3:2", "4:3", "1:1"])
def test_unclipped_fundus_is_a_bright_circle_on_black(aspect):
    img = _render(0, 2, aspect=aspect)
    mask = _fundus_mask(img)
    ys, xs = np.nonzero(mask)
    # A whole circle: as wide as it is tall, not touching the top or bottom edge.
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(width - height) <= 2
    assert ys.min() > 0 and ys.max() < H - 1
    radius = width / 2
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    assert mask.sum() == pytest.approx(math.pi * radius**2, rel=0.03)

    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    dist = np.hypot(xx - cx, yy - cy)
    outside = img[dist > radius + 2]
    inside = img[dist < 0.85 * radius]
    assert outside.max() <= 10  # near-black surround
    brightness = inside.max(axis=1)
    assert np.percentile(brightness, 1) > 40  # no dark holes inside the fundus
    assert brightness.mean() > 100


@pytest.mark.parametrize("aspect", ["3:2", "4:3"])
def test_clipped_fundus_is_cut_at_top_and_bottom_only(aspect):
    img = _render(0, 3, aspect=aspect, clipped=True)
    mask = _fundus_mask(img)
    ys, xs = np.nonzero(mask)
    assert ys.min() == 0 and ys.max() == H - 1  # circle runs off the top and bottom
    assert mask[0].sum() > 0.2 * H  # a flat chord, not a single touching point
    assert xs.min() > 0 and xs.max() < img.shape[1] - 1  # left and right edges stay black
    assert xs.max() - xs.min() + 1 > H  # the circle is taller than the frame


@pytest.mark.parametrize("eye", ["left", "right"])
def test_optic_disc_is_on_the_nasal_side_of_each_eye(eye):
    img = _render(0, 4, aspect="1:1", eye=eye)
    # The disc is the brightest blob of the green channel (the usual disc detector);
    # smoothing removes vessels and noise first.
    green = cv2.GaussianBlur(img[..., 1].astype(np.float32), (0, 0), 4)
    _, _, _, (x, _y) = cv2.minMaxLoc(green)
    ys, xs = np.nonzero(_fundus_mask(img))
    cx, radius = (xs.min() + xs.max()) / 2, (xs.max() - xs.min()) / 2
    offset = (x - cx) / radius
    # Right eye photographed from the front: nasal side (disc) on the image's right.
    assert 0.2 < (offset if eye == "right" else -offset) < 0.6


def test_same_rng_state_gives_the_same_image_and_another_seed_does_not():
    assert np.array_equal(_render(2, 5), _render(2, 5))
    assert not np.array_equal(_render(2, 5), _render(2, 6))


def test_lesions_grow_with_grade():
    # The same rng state at two grades gives the same eye and camera; only lesions differ,
    # so darker-in-green pixels (blood absorbs green) count the red lesions exactly.
    dark = np.zeros(5)
    yellow = np.zeros(5)
    for seed in range(3):
        images = [_render(g, seed).astype(int) for g in range(5)]
        green0 = images[0][..., 1]
        for g, img in enumerate(images):
            dark[g] += ((green0 - img[..., 1]) > 20).sum()
            yellow[g] += ((img[..., 1] - green0) > 30).sum()
    assert dark[0] == 0 and yellow[0] == 0
    assert 0 < dark[1] < dark[2] < dark[3]  # microaneurysms, + haemorrhages, + many in 4 quadrants
    assert dark[4] > dark[2]
    assert yellow[1] == 0 and yellow[2] > 0  # hard exudates appear from grade 2


def test_grade_differs_between_independent_images_on_average():
    # Unpaired: a simple dark-red-spot statistic separates grade 0 from grade 3 eyes.
    def dark_spots(img: np.ndarray) -> float:
        green = img[..., 1].astype(np.float32)
        background = cv2.medianBlur(img[..., 1], 15).astype(np.float32)
        inside = cv2.erode(_fundus_mask(img).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        return float(((background - green)[inside] > 25).mean())

    healthy = np.mean([dark_spots(_render(0, 100 + i)) for i in range(4)])
    severe = np.mean([dark_spots(_render(3, 200 + i)) for i in range(4)])
    assert severe > 1.5 * healthy


def test_make_fundus_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="grade"):
        make_fundus(5, rng, height=H)
    with pytest.raises(ValueError, match="aspect"):
        make_fundus(0, rng, height=H, aspect="16:9")
    with pytest.raises(ValueError, match="camera"):
        make_fundus(0, rng, height=H, camera={"iso": 100})
    with pytest.raises(ValueError, match="eye"):
        make_fundus(0, rng, height=H, eye="both")


# ----------------------------------------------------------------------- make_dataset
def test_dataset_has_the_kaggle_layout(tmp_path):
    labels = make_dataset(tmp_path / "out", 4, seed=1, height=H, progress=False)
    assert labels == tmp_path / "out" / "trainLabels.csv"
    rows = _read_labels(labels)
    names = [r["image"] for r in rows]
    patients = sorted({int(n.split("_")[0]) for n in names})
    assert len(patients) == 4
    assert names == [f"{p}_{eye}" for p in patients for eye in ("left", "right")]
    assert {int(r["level"]) for r in rows} <= {0, 1, 2, 3, 4}
    files = sorted(p.name for p in (tmp_path / "out" / "images").iterdir())
    assert files == sorted(f"{n}.jpeg" for n in names)
    img = cv2.imread(str(tmp_path / "out" / "images" / files[0]))
    assert img is not None and img.shape[0] == H


def test_dataset_bytes_depend_on_seed_only(tmp_path):
    a = make_dataset(tmp_path / "a", 3, seed=7, height=H, progress=False).parent
    b = make_dataset(tmp_path / "b", 3, seed=7, height=H, workers=2, progress=False).parent
    c = make_dataset(tmp_path / "c", 3, seed=8, height=H, progress=False).parent
    assert _folder_bytes(a) == _folder_bytes(b)  # workers do not change the output
    assert _folder_bytes(a) != _folder_bytes(c)
    # Per-image seeds: a patient's images do not depend on how many patients are made.
    d = make_dataset(tmp_path / "d", 2, seed=7, height=H, progress=False).parent
    first = _read_labels(d / "trainLabels.csv")[0]["image"]
    assert (d / "images" / f"{first}.jpeg").read_bytes() == (a / "images" / f"{first}.jpeg").read_bytes()


def test_grade_probs_set_the_first_eye_grade(tmp_path):
    rows = _read_labels(make_dataset(tmp_path, 3, height=96, grade_probs=[0, 0, 0, 0, 1], progress=False))
    levels = [int(r["level"]) for r in rows]
    # Each patient has one eye of grade 4; the other is 4 or one grade off.
    assert all(max(levels[i : i + 2]) == 4 and min(levels[i : i + 2]) >= 3 for i in range(0, 6, 2))
    with pytest.raises(ValueError, match="grade_probs"):
        make_dataset(tmp_path / "x", 1, grade_probs=[0.5, 0.5])


def test_eye_grades_are_correlated_and_frequencies_eyepacs_like():
    probs = np.array(synth_dataset.DEFAULT_GRADE_PROBS)
    plans = [synth_dataset._patient_plan(0, p, probs)[0] for p in range(10, 1010)]
    diffs = np.array([abs(g["left"] - g["right"]) for g in plans])
    assert diffs.max() == 1
    assert 0.65 < (diffs == 0).mean() < 0.85  # 0.7 plus grade-0 eyes clipped back to 0
    grades = np.array([g[eye] for g in plans for eye in ("left", "right")])
    assert 0.65 < (grades == 0).mean() < 0.8
    assert (grades == 4).sum() > 0


def test_refuses_to_write_into_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        make_dataset(tmp_path, 1, height=96, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_rerun_replaces_an_earlier_output_cleanly(tmp_path):
    make_dataset(tmp_path, 3, seed=1, height=96, progress=False)
    rows = _read_labels(make_dataset(tmp_path, 2, seed=2, height=96, progress=False, overwrite=True))
    files = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert files == sorted(f"{r['image']}.jpeg" for r in rows)  # no stale images of seed 1


def test_interrupted_run_leaves_no_labels_and_resumes(tmp_path, monkeypatch):
    real_render = synth_dataset.render_image_file
    done = []

    def render_then_crash(task):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(real_render(task))

    monkeypatch.setattr(synth_dataset, "render_image_file", render_then_crash)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path, 2, height=96, progress=False)
    assert not (tmp_path / "trainLabels.csv").exists()
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    assert len(kept) == 2

    monkeypatch.setattr(synth_dataset, "render_image_file", real_render)
    rows = _read_labels(make_dataset(tmp_path, 2, height=96, progress=False))
    assert len(rows) == 4
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished images reused


def _files(folder) -> dict:
    return {str(f.relative_to(folder)): (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(folder.rglob("*")) if f.is_file()}


def main_error(out, patients, capsys) -> str:
    from drgrader.cli import main

    assert main(["synth", "--out", str(out), "--patients", patients, "--height", "96", "--progress", "log"]) == 2
    return capsys.readouterr().err


def test_synth_over_an_earlier_output_whose_labels_the_user_extended_is_refused(tmp_path, capsys):
    """Probe 34 BX11: the rerun replaced the folder whole, the user's added label rows lost."""
    from drgrader.cli import main

    out = tmp_path / "sy"
    make_dataset(out, 3, height=96, progress=False)
    (out / "notes.txt").write_text("my notes")
    with open(out / "trainLabels.csv", "a") as fh:
        fh.write("IMG1,3\n")
    before = _files(out)
    for patients in ("2", "3"):  # other settings, and the very same ones
        assert main(["synth", "--out", str(out), "--patients", patients, "--height", "96", "--progress", "log"]) == 2
        err = capsys.readouterr().err
        assert "trainLabels.csv was changed since synth wrote it: 1 row(s) not synth's (IMG1,3)" in err
        assert "--overwrite" in err
        assert _files(out) == before
    assert "would replace its trainLabels.csv and 6 image(s) with a data set of 2 patients" in main_error(out, "2", capsys)
    assert main(["synth", "--out", str(out), "--patients", "2", "--height", "96", "--overwrite", "--progress", "log"]) == 0
    assert len(_read_labels(out / "trainLabels.csv")) == 4


def test_synth_of_other_settings_over_a_finished_output_is_refused_the_same_rerun_goes_on(tmp_path, capsys):
    out = tmp_path / "sy"
    make_dataset(out, 3, height=96, progress=False)
    before = _files(out)
    err = main_error(out, "5", capsys)
    assert f"--out {out} holds a synthetic data set of 3 patients, seed 0, 96 px: this run would replace" in err
    assert _files(out) == before
    # The same settings write the same files: allowed (and an unfinished output is resumed).
    make_dataset(out, 3, height=96, progress=False)
    after = _files(out)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert all(after[k][1] == before[k][1] for k in after if k.startswith("images/"))  # images reused


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5"])
def test_synth_refuses_a_seed_numpy_cannot_take_as_a_usage_error(tmp_path, capsys, seed):
    # Probe 39 CC1 (probe 38 CB2's addendum): a traceback, exit 1.
    from drgrader.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--out", str(tmp_path / "sy"), "--seed", seed])
    assert exit_.value.code == 2 and "a seed, a whole number from 0 to 4294967295" in capsys.readouterr().err
    assert not (tmp_path / "sy").exists()
