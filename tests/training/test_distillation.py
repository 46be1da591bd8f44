"""Distillation (train.distill_from): the regression target blends the grade with a teacher's score."""

import pandas as pd
import pytest
from conftest import tiny_config

from drgrader.config import ConfigError, load_config
from drgrader.data.label_files import DataError
from drgrader.training.distillation import distillation_targets


def teacher_csv(path, scores: dict) -> str:
    pd.DataFrame({"image_id": list(scores), "expected_grade": list(scores.values())}).to_csv(path, index=False)
    return str(path)


def test_targets_blend_grade_and_teacher(tmp_path):
    rows = pd.DataFrame({"image_id": ["a", "b"], "grade": [2, 0]})
    file = teacher_csv(tmp_path / "t.csv", {"b": 1.0, "a": 1.0, "c": 3.0})
    assert distillation_targets(rows, file, 0.25).tolist() == [0.75 * 2 + 0.25 * 1.0, 0.25 * 1.0]
    assert distillation_targets(rows, file, 0.0).tolist() == [2.0, 0.0]


def test_a_photo_without_a_teacher_score_or_a_bad_score_is_named(tmp_path):
    rows = pd.DataFrame({"image_id": ["a", "b"], "grade": [2, 0]})
    with pytest.raises(DataError, match=r"t.csv: no teacher score for 1 of 2 training photos \(e.g. 'b'\)"):
        distillation_targets(rows, teacher_csv(tmp_path / "t.csv", {"a": 1.0}), 0.5)
    (tmp_path / "bad.csv").write_text("image_id,expected_grade\na,1.5\nb,high\n")
    with pytest.raises(DataError, match=r"bad.csv row 2 \(image 'b'\): expected_grade 'high' is not a number"):
        distillation_targets(rows, tmp_path / "bad.csv", 0.5)


def test_only_regression_losses_distil():
    with pytest.raises(ConfigError, match="train.distill_from blends the regression target"):
        load_config(None, ["train.distill_from=t.csv", "train.loss=ce"])


def test_a_student_learns_what_its_teacher_says(synth_dir, tmp_path):
    """Two students of the same photos and grades, one taught 'grade 4 everywhere', one 'grade 0':
    only the teacher differs, and the first grades the validation photos higher."""
    from drgrader.workflows.train import train

    images = [p.stem for p in (synth_dir / "images").iterdir()]
    means = {}
    for said in (0.0, 4.0):
        file = teacher_csv(tmp_path / f"teacher{said:.0f}.csv", dict.fromkeys(images, said))
        cfg = tiny_config(synth_dir, **{"train.epochs": 3, "train.loss": "mse", "train.distill_from": file,
                                        "train.distill_weight": 1.0, "eval.bootstrap": 0})
        run = train(cfg, out=tmp_path / f"student{said:.0f}", progress=False)
        means[said] = pd.read_csv(run / "predictions_val.csv")["expected_grade"].mean()
    # Same seed, same photos and grades: without the teacher the two runs would be identical.
    assert means[4.0] - means[0.0] > 0.3, means


def test_each_cv_fold_reads_its_own_teacher():
    from pathlib import Path

    from drgrader.workflows.cv import fold_config

    cfg = load_config(None, ["train.loss=mse", "train.distill_from=teachers/fold-{fold}.csv"])
    assert [fold_config(cfg, 5, i).train.distill_from for i in (0, 3)] == [Path("teachers/fold-0.csv"), Path("teachers/fold-3.csv")]
