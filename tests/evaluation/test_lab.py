"""The lab's comparison of variants on the same out-of-fold eyes (drgrader.evaluation.lab)."""

import numpy as np
import pandas as pd
import pytest

from drgrader.config import EvalConfig
from drgrader.config_values import DIHEDRAL_VIEWS
from drgrader.evaluation.lab import compare_variants, kappa, lab_markdown, variant_scores
from drgrader.grading import SCORE_COLUMNS


def oof_and_lab(noise: dict[str, float], seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 patients, two eyes of one grade each; every (weights, view) scores the grade plus its
    own independent noise, so averaging views cancels noise and a noisier weight set is worse."""
    rng = np.random.default_rng(seed)
    grades = np.repeat(rng.choice(5, 300, p=[0.5, 0.15, 0.2, 0.1, 0.05]), 2)
    oof = pd.DataFrame({"image_id": [f"{i // 2}_{'left' if i % 2 else 'right'}" for i in range(600)],
                        "patient_id": [str(i // 2) for i in range(600)], "eye": ["right", "left"] * 300,
                        "grade": grades, "fold": 0})
    parts = []
    for weights, sd in noise.items():
        for view in DIHEDRAL_VIEWS:
            expected = grades + rng.normal(0, sd, grades.size)
            scores = np.full((grades.size, len(SCORE_COLUMNS)), np.nan)
            for col in ("expected_grade", "score_any", "score_referable"):
                scores[:, SCORE_COLUMNS.index(col)] = expected
            part = pd.DataFrame(scores, columns=SCORE_COLUMNS)
            parts.append(part.assign(image_id=oof["image_id"], weights=weights, view=view))
    return oof, pd.concat(parts, ignore_index=True)


def test_variant_scores_average_the_chosen_views():
    oof, lab = oof_and_lab({"best": 1.0})
    got = variant_scores(lab, "best", ["orig", "hflip"], oof["image_id"])
    col = SCORE_COLUMNS.index("expected_grade")
    by_view = {v: lab[lab["view"] == v].set_index("image_id").loc[oof["image_id"], "expected_grade"].to_numpy()
               for v in ("orig", "hflip")}
    assert got[:, col] == pytest.approx((by_view["orig"] + by_view["hflip"]) / 2)
    with pytest.raises(ValueError, match="lack ema weights"):
        variant_scores(lab, "ema", ["orig"], oof["image_id"])


def test_more_views_and_less_noisy_weights_win_by_paired_differences():
    oof, lab = oof_and_lab({"best": 1.0, "ema": 2.5})
    variants = {"best, 2 views (shipped)": ("best", ["orig", "hflip"]), "best, 8 views": ("best", DIHEDRAL_VIEWS),
                "ema, 2 views": ("ema", ["orig", "hflip"])}
    result = compare_variants(oof, lab, variants, EvalConfig(), n_boot=200, seed=0)
    shipped, eight, ema = (result["variants"][k]["single eye"] for k in variants)
    # The paired difference is the difference of the two estimates on the same eyes ...
    assert eight["vs_reference"]["kappa"][0] == pytest.approx(eight["kappa"][0] - shipped["kappa"][0])
    # ... and with four times the views (noise sd 1/sqrt(8) against 1/sqrt(2)) it is clearly positive.
    assert eight["vs_reference"]["kappa"][1] > 0 and eight["vs_reference"]["referable_auc"][1] > 0
    assert ema["vs_reference"]["kappa"][2] < 0  # the noisier weights lose, CI below zero
    # Two eyes of one grade: the paired-eye stage averages two looks at one disease and gains.
    assert result["paired_eyes_vs_single"]["kappa"][1] > 0
    paired = result["variants"]["best, 2 views (shipped)"]["paired eyes"]
    assert paired["kappa"][0] > shipped["kappa"][0]
    table = lab_markdown(result)
    assert table.count("\n| best, 8 views |") == 2 and "(reference)" in table


def test_kappa_of_a_perfect_grader_is_one():
    d = pd.DataFrame({"grade": [0, 1, 2, 3, 4], "pred_grade": [0, 1, 2, 3, 4]})
    assert kappa(d) == pytest.approx(1.0)


def test_a_variant_whose_paired_stage_is_refused_keeps_its_single_eye_row():
    """A stage that cannot be fitted (here no eye has its fellow) is a row saying why, not a
    traceback at the end of a finished cv (the final read of probe 33)."""
    oof, lab = oof_and_lab({"best": 1.0})
    oof["patient_id"] = oof["image_id"]  # every eye a patient of its own: no pairs
    variants = {"best, 2 views (shipped)": ("best", ["orig", "hflip"]), "best, 8 views": ("best", DIHEDRAL_VIEWS)}
    result = compare_variants(oof, lab, variants, EvalConfig(), n_boot=50, seed=0)
    eight = result["variants"]["best, 8 views"]
    assert eight["single eye"]["vs_reference"]["kappa"][0] > 0
    assert "refused" in eight["paired eyes"] and result["paired_eyes_vs_single"] is None
    table = lab_markdown(result)
    assert "| best, 8 views | paired eyes | not fitted: " in table and "Paired-eye stage against" not in table
