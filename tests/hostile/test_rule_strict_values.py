"""Rule 5: strict values. Config values and ``--set`` are typed strictly (no YAML 1.1 booleans,
no octal-looking or underscored integers, no empty path, no key given twice); commands check
their arguments before creating anything; ``evaluate BUNDLE --data D`` writes beside the bundle,
never inside it, with one model-card entry per data set, and copes with a read-only bundle.
Also: an error message names only options its command has."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from drgrader.cli import build_parser, main
from drgrader.config import ConfigError, load_config, save_config


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err), err
    return err[-1]


# ------------------------------------------------------------------------ strict typing
@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "y", "n", "On", "NO", "1", "0"])
def test_yaml_11_words_are_not_booleans(word):
    with pytest.raises(ConfigError, match=r"data\.preprocess\.crop: Input should be a valid boolean .*write true or false"):
        load_config(None, [f"data.preprocess.crop={word}"])


@pytest.mark.parametrize("value", ["on", "010", "0x10", "0o10", "1_000", "1:30", "10.0", "true", "1e1"])
def test_an_integer_is_plain_decimal(value):
    with pytest.raises(ConfigError, match=r"train\.epochs: Input should be a valid integer"):
        load_config(None, [f"train.epochs={value}"])


def test_a_bad_set_value_is_named_as_one_not_blamed_on_the_config_file(tmp_path):
    """Probe 59 CW8: a bad --set on train --resume was 'invalid configuration in runs/x/config.yaml'."""
    config = tmp_path / "config.yaml"
    save_config(load_config(None), config)
    with pytest.raises(ConfigError, match=r"^invalid --set value: train\.epochs: Input should be a valid integer"):
        load_config(config, ["train.epochs=abc"])
    config.write_text(config.read_text().replace("epochs:", "epochs: x #", 1))  # the file's own fault stays the file's
    with pytest.raises(ConfigError, match=rf"^invalid configuration in {re.escape(str(config))}: "):
        load_config(config, ["train.seed=3"])


def test_numbers_and_text_that_are_meant():
    cfg = load_config(None, ["train.epochs=10", "train.lr=1e-3", "train.weight_decay=0", "data.split.val=.25",
                             "name=on", "model.backbone=010", "data.preprocess.crop=false", "train.seed=-0"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.weight_decay, cfg.data.split.val) == (10, 0.001, 0.0, 0.25)
    assert (cfg.name, cfg.model.backbone, cfg.data.preprocess.crop, cfg.train.seed) == ("on", "010", False, 0)
    with pytest.raises(ConfigError, match=r"train\.lr: Input should be a valid number"):
        load_config(None, ["train.lr=true"])


@pytest.mark.parametrize("override", ["data.root=/scans/clinic #2", "train.epochs=5 # five", "name=#1"])
def test_a_comment_that_would_cut_a_value_short_is_refused(override):
    with pytest.raises(ConfigError, match=r"' #' starts a YAML comment, which would drop the rest of the value; quote"):
        load_config(None, [override])
    cfg = load_config(None, ["data.root='/scans/clinic #2'", "name=run#1"])  # quoted, or '#' inside a word: kept
    assert (str(cfg.data.root), cfg.name) == ("/scans/clinic #2", "run#1")


def test_a_view_given_twice_is_refused_and_a_home_folder_is_expanded(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match=r"eval\.tta: .*view 'hflip' given twice"):
        load_config(None, ["eval.tta=[orig,hflip,hflip]"])  # it would count twice in the average
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_config(None, ["data.root=~/photos"]).data.root == tmp_path / "photos"


def test_a_view_given_twice_is_refused_by_predict_and_grade_too(tiny_bundle, tmp_path, capsys):
    # The config's check, everywhere views are given (bundle.json's: test_rule_bundle_consistency).
    import drgrader

    photo = tmp_path / "1_left.jpeg"
    photo.write_bytes(b"never read")
    for views in (["orig", "hflip", "hflip"], ["orig", "orig"]):
        with pytest.raises(SystemExit) as exit:
            main(["predict", str(tiny_bundle), str(photo), "--tta", *views, "--out", str(tmp_path / "p.csv")])
        assert exit.value.code == 2
        assert f"argument --tta: view {views[-1]!r} given twice: each view counts once" in capsys.readouterr().err
        with pytest.raises(ConfigError, match=f"tta: view {views[-1]!r} given twice"):
            drgrader.grade(tiny_bundle, [photo], tta=views)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1_left.jpeg"]


def test_serve_explain_takes_true_false_1_0_only(tiny_bundle):
    # Before: FastAPI's bool read on/yes/y/t as true and off/no/n/f as false, words --set refuses.
    from fastapi.testclient import TestClient

    from drgrader.inference.serve import create_app
    from drgrader.synth import make_fundus

    ok, photo = cv2.imencode(".jpeg", make_fundus(1, np.random.default_rng(0), height=128))
    files = {"file": ("1_left.jpeg", photo.tobytes(), "image/jpeg")}
    with TestClient(create_app(tiny_bundle)) as client:
        for word in ("on", "yes", "y", "t", "True", "off", "no", "n", "f", "FALSE"):
            res = client.post("/api/predict", params={"explain": word}, files=files)
            assert res.status_code == 400 and res.json()["error"].startswith(f"explain={word!r}: "), res.text
        explains = client.get("/api/health").json()["explain"]
        for value, overlay in (("true", explains), ("1", explains), ("false", False), ("0", False)):
            res = client.post("/api/predict", params={"explain": value}, files=files)
            assert res.status_code == 200 and ("overlay_png" in res.json()) == overlay, value


@pytest.mark.parametrize("override", ["train.lr=.inf", "train.max_minutes=.inf", "train.focal_gamma=.inf", "train.mixup=.inf",
                                      "train.weight_decay=.inf", "data.preprocess.clahe_clip=.inf", "eval.threshold_range=[0, .inf]"])
def test_infinity_is_refused_like_nan(override):
    # `gt=0` lets infinity through (NaN fails every bound): a float field takes finite numbers only.
    field = override.split("=")[0].replace(".", r"\.")
    with pytest.raises(ConfigError, match=rf"{field}(\.1)?: Input should be a finite number \(got inf\)"):
        load_config(None, [override])
    with pytest.raises(ConfigError, match=rf"{field}(\.1)?: "):
        load_config(None, [override.replace(".inf", ".nan")])


@pytest.mark.parametrize("name", ["../escaped", "runs/a", "a\\b", "..", ".", "x" * 201])
def test_a_run_name_is_one_folder_name(name):
    # `name` makes <out_dir>/<name>: '../escaped' wrote the run outside out_dir.
    with pytest.raises(ConfigError, match=r"name: Value error, .*(not one plain name|more than 200)"):
        load_config(None, [f"name='{name}'"])
    assert load_config(None, ["name=cpu_grade-2.b"]).name == "cpu_grade-2.b"


def test_a_config_file_is_read_as_strictly(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("data:\n  preprocess: {crop: yes}\ntrain:\n  epochs: 010\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "data.preprocess.crop: Input should be a valid boolean (got 'yes'" in str(err.value)
    assert "train.epochs: Input should be a valid integer (got '010'" in str(err.value)


@pytest.mark.parametrize("name", ["on", "1e3", "010", "2024-01-01", "true story", "1_000"])
def test_a_saved_config_reads_back_the_same(tmp_path, name):
    cfg = load_config(None, [f"name='{name}'", "train.lr=0.00001"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and again.name == name


@pytest.mark.parametrize("override", ["data.root=", "data.root= ", "data.cache_dir=", "data.labels=", "out_dir=", "data.split.file="])
def test_an_empty_path_is_refused(override):
    field = override.split("=")[0].replace(".", r"\.")
    with pytest.raises(ConfigError, match=f"{field}: Value error, empty path"):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["data.columns.patient=", "data.columns.image=' '", "data.columns.grade=''",
                                      "data.columns.eye= "])
def test_an_empty_column_name_is_refused(override):
    field = override.split("=")[0].replace(".", r"\.")
    with pytest.raises(ConfigError, match=f"{field}: Value error, empty column name"):
        load_config(None, [override])


@pytest.mark.parametrize(("override", "field"), [("eval.tta=[]", "eval.tta"), ("name=", "name"), ("name=''", "name")])
def test_an_empty_list_of_views_or_name_is_refused(override, field):
    with pytest.raises(ConfigError, match=f"{field.replace('.', '[.]')}: .*at least 1"):
        load_config(None, [override])


def test_a_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 3\neval: {bootstrap: 5}\ntrain:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"key 'train' is written twice \(line 4, column 1\)"):
        load_config(path)
    path.write_text("train:\n  <<: {epochs: 3, lr: 0.1}\n  epochs: 5\n")  # a merged key overridden: not a repeat
    assert (load_config(path).train.epochs, load_config(path).train.lr) == (5, 0.1)
    with pytest.raises(ConfigError, match=r"sets train\.epochs again"):
        load_config(None, ["train.epochs=3", "train.epochs=5"])
    with pytest.raises(ConfigError, match=r"sets data\.split again"):
        load_config(None, ["data.split.val=0.1", "data.split={val: 0.3}"])


def test_train_options_and_set_cannot_disagree(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{root: {tmp_path}}}\n")
    assert main(["train", str(config), "--devices", "2", "--set", "train.devices=1", "--out", str(tmp_path / "run")]) == 2
    assert "sets train.devices again" in error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [
    ["predict", "photos", "--bundle", "a", "--bundle", "b"],
    ["predict", "photos", "--out", "p1.csv", "--out", "p2.csv"],
    ["evaluate", "bundle", "--data", "d1", "--data", "d2"],
    ["cv", "demo", "--folds", "3", "--folds", "5"],
])
def test_an_option_given_twice_is_refused(argv, capsys):
    """Probe 42 CF7: `--bundle A --bundle B` graded with B, `--data D1 --data D2` evaluated D2 only,
    without a word (argparse keeps the last)."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2
    option, first, second = argv[-4], argv[-3], argv[-1]
    assert f"argument {option}: given twice ('{first}' and '{second}'): give it once" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["predict", "photos", "--out", "p.csv/"], ["merge-predictions", "a.csv", "--out", "m.csv/"]])
def test_an_output_file_named_like_a_folder_is_refused(argv, capsys):
    """Probe 43 BG9: `--out p.csv/` wrote the file p.csv."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2
    assert f"argument --out: {argv[-1]!r} ends with '/', so it names a folder" in capsys.readouterr().err


def test_an_output_through_a_folder_not_yet_made_and_back_is_the_file_it_names(tmp_path, monkeypatch):
    """Probe 51 BO2: `--out new/../x.csv` (new not made yet) skipped every check of what x.csv was
    (another shard's part, the user's own CSV) and replaced it."""
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["predict", "photos", "--out", "new/../x.csv"])
    assert args.out == Path("x.csv")
    (tmp_path / "real").mkdir()
    args = build_parser().parse_args(["predict", "photos", "--out", "real/../y.csv"])  # the OS reads it: kept
    assert args.out == Path("real/../y.csv")


def test_the_progress_mode_after_the_command_still_wins_over_the_one_before():
    args = build_parser().parse_args(["--progress", "log", "predict", "photos", "--progress", "bar"])
    assert args.progress == "bar" and "_drgrader_given" not in vars(args)


# ------------------------------------------------------------- arguments before outputs
def test_train_without_validation_photos_is_refused_before_its_folder_exists(synth_dir, tmp_path, capsys):
    """Probe 35 BY8: `train --set data.split.val=0` cached every photo, then ended in a traceback,
    exit 1, its half-made run folder left."""
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{root: {synth_dir}, format: kaggle}}\n")
    assert main(["train", str(config), "--set", "data.split.val=0", "--out", str(tmp_path / "run")]) == 2
    assert error_line(capsys).startswith("error: train needs validation photos to choose the best epoch and fit the "
                                         "thresholds; the split has none")
    assert not (tmp_path / "run").exists()


def test_cv_checks_its_folds_against_the_patients_before_making_its_folder(synth_dir, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{root: {synth_dir}, format: kaggle}}\n")
    for folds in ("41", "1"):
        assert main(["cv", str(config), "--folds", folds, "--out", str(tmp_path / "cv")]) == 2
        assert not (tmp_path / "cv").exists()
    assert "--folds must be at least 2" in error_line(capsys)
    # Probe 34 BX2: a split file (a test set held out) was ignored: its test patients went into the folds.
    split = tmp_path / "split.csv"
    split.write_text("image_id,split\n10_left,test\n")
    assert main(["cv", str(config), "--folds", "2", "--set", f"data.split.file={split}", "--out", str(tmp_path / "cv")]) == 2
    assert error_line(capsys).startswith(f"error: data.split.file={split}: cv draws its own patient folds")
    assert not (tmp_path / "cv").exists()
    # Probe 35 BY2: nor the data set's published split (its test part went into the folds).
    assert main(["cv", str(config), "--folds", "2", "--set", "data.split.method=official", "--out", str(tmp_path / "cv")]) == 2
    assert error_line(capsys).startswith("error: data.split.method=official: cv draws its own patient folds")
    assert not (tmp_path / "cv").exists()
    assert main(["cv", str(config), "--folds", "41", "--out", str(tmp_path / "cv")]) == 2
    assert "--folds 41 needs at least 41 patients (one per fold); the data set" in error_line(capsys)
    # Patients linked by a copied photo count as one fold unit, up front as in the folds (before, probe 25:
    # the check passed, the cv folder was made, and fold 1 failed "has 39"; a rerun with fewer folds was refused).
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    (data / "images" / "11_right.jpeg").write_bytes((data / "images" / "10_left.jpeg").read_bytes())
    config.write_text(f"data: {{root: {data}, format: kaggle}}\n")
    assert main(["cv", str(config), "--folds", "40", "--out", str(tmp_path / "cv")]) == 2
    assert "--folds 40 needs at least 40 patients (one per fold); the data set" in (line := error_line(capsys))
    assert line.endswith("has 40, 39 once patients linked by a copied photo are kept together") and not (tmp_path / "cv").exists()
    # A re-saved copy (other bytes, one picture) counts the same, before the folder exists (before, probe 27:
    # refused only in fold 0, leaving a half-made cv folder that blocked the corrected command).
    cv2.imwrite(str(data / "images" / "11_right.jpeg"), cv2.imread(str(data / "images" / "10_left.jpeg")), [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert main(["cv", str(config), "--folds", "40", "--out", str(tmp_path / "cv")]) == 2
    assert error_line(capsys).endswith("has 40, 39 once patients linked by a copied photo are kept together")
    assert not (tmp_path / "cv").exists()


def test_train_checks_its_data_before_making_the_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    for data in (f"{{root: {tmp_path / 'nothere'}}}", f"{{root: {tmp_path}, format: csv, labels: none.csv}}",
                 f"{{root: {tmp_path}, split: {{file: {tmp_path / 'split.csv'}}}}}"):
        config.write_text(f"name: p\ndata: {data}\nmodel: {{backbone: test_resnet}}\n")
        assert main(["train", str(config)]) == 2
        error_line(capsys)
        assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args", [["synth", "--patients", "0"], ["synth", "--patients", "-3"], ["synth", "--height", "8"],
                                  ["synth", "--height", "20000"], ["synth", "--workers", "0"], ["demo", "--patients", "0"]])
def test_counts_out_of_range_are_usage_errors_before_anything_is_made(tmp_path, capsys, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main([*args, "--out", str(tmp_path / "out")] if args[0] == "synth" else [*args, "--data", str(tmp_path / "d")])
    assert exit.value.code == 2 and f"argument {args[1]}: '{args[2]}' is not" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting", ["train.seed=-1", "data.split.seed=-1", "train.seed=4294967296"])
def test_a_seed_numpy_cannot_take_is_refused_before_anything_is_made(tmp_path, capsys, monkeypatch, setting):
    # Probe 38 CB2: a negative (or >= 2**32) seed ended in a numpy traceback after the run folder was made.
    monkeypatch.chdir(tmp_path)
    assert main(["train", "demo", "--set", setting, "--out", str(tmp_path / "run")]) == 2
    assert f"{setting.split('=')[0]}: Input should be" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_resume_refuses_a_config_or_out_it_would_ignore(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = tmp_path / "other.yaml"
    config.write_text("name: other\n")
    assert main(["train", str(config), "--resume", str(run)]) == 2
    assert "drop a config" in error_line(capsys)
    assert main(["train", "--resume", str(run), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "drop --out" in error_line(capsys)
    assert not (tmp_path / "elsewhere").exists()


# --------------------------------------------------------------------- evaluate beside
@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    from drgrader.synth import make_dataset

    root = tmp_path_factory.mktemp("external") / "clinic-b"
    make_dataset(root, 4, seed=5, height=128, progress=False)
    return root


def evaluate(bundle: Path, data: Path, *extra: str) -> int:
    return main(["evaluate", str(bundle), "--data", str(data), "--set", "eval.bootstrap=5", *extra])


def test_what_reading_the_data_set_warned_of_is_in_the_report_and_the_card(tiny_bundle, clinic, tmp_path):
    """Probe 45 CI6: "maculopathy is not read: referable here is grade 2 or worse only" was said on the
    console only; the report and the card, which outlive it, said nothing."""
    data = tmp_path / "with-maculopathy"
    shutil.copytree(clinic, data)
    labels = data / "trainLabels.csv"
    rows = labels.read_text().splitlines()
    labels.write_text("\n".join([rows[0] + ",maculopathy", *(r + ",0" for r in rows[1:])]) + "\n")
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    assert evaluate(bundle, data, "--out", str(tmp_path / "ev")) == 0
    said = "Reading the data set: trainLabels.csv: column 'maculopathy' (maculopathy, DME) is not read"
    assert said in (tmp_path / "ev" / "report.md").read_text(encoding="utf-8")
    assert said in (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["data"]["warnings"][0].startswith("trainLabels.csv: column")


def test_evaluate_writes_beside_the_bundle_with_one_card_entry_per_data_set(tiny_bundle, clinic, tmp_path, monkeypatch):
    models = tmp_path / "models"
    bundle = models / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in bundle.iterdir())
    assert evaluate(bundle, clinic) == 0
    assert evaluate(bundle, clinic) == 0  # the same data again: a new folder, the card's entry replaced
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*before, "MODEL_CARD.md"])  # nothing inside but the card
    assert sorted(p.name for p in models.iterdir()) == ["tiny", "tiny-eval-clinic-b", "tiny-eval-clinic-b-2"]
    card = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card.count("### clinic-b (") == 1 and str(models / "tiny-eval-clinic-b-2") in card
    assert json.loads((models / "tiny-eval-clinic-b-2" / "metrics.json").read_text())["model"] == str(bundle)
    # --out inside the bundle is refused before any work.
    assert evaluate(bundle, clinic, "--out", str(bundle / "eval")) == 2
    assert not (bundle / "eval").exists()


def test_evaluate_out_holding_another_evaluation_is_refused(tiny_bundle, other_tiny_bundle, clinic, tmp_path, capsys):
    """Probe 27 X2: --out holding the evaluation of another data set was replaced without a word,
    and the card's entry of the first data set then pointed at the second's figures."""
    bundle, other = tmp_path / "tiny", tmp_path / "tiny2"
    shutil.copytree(tiny_bundle, bundle)
    shutil.copytree(other_tiny_bundle, other)
    shifted = tmp_path / "clinic-shifted"  # the same photos, every grade +1
    shutil.copytree(clinic, shifted)
    labels = shifted / "trainLabels.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[0], *(f"{n},{min(int(g) + 1, 4)}" for n, g in (x.split(",") for x in lines[1:]))]) + "\n")
    out = tmp_path / "X"
    assert evaluate(bundle, clinic, "--out", str(out)) == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert evaluate(bundle, shifted, "--out", str(out)) == 2
    line = error_line(capsys)
    assert "holds the evaluation of another data set" in line and "--overwrite" in line, line
    assert (out / "metrics.json").read_bytes() == before
    assert evaluate(other, clinic, "--out", str(out)) == 2  # another model: refused too
    assert "holds the evaluation of another model" in error_line(capsys)
    assert (out / "metrics.json").read_bytes() == before
    # The same bundle on the same data again replaces its own result.
    assert evaluate(bundle, clinic, "--out", str(out)) == 0
    card = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card.count("<!-- drgrader:external") == 1 and card.count(f"evaluation folder `{out.resolve()}`") == 1
    # --overwrite: the folder holds the new data set's evaluation, and the card names it once, truthfully.
    assert evaluate(bundle, shifted, "--out", str(out), "--overwrite") == 0
    assert json.loads((out / "metrics.json").read_text())["evaluated_on"] == f"external:{shifted}"
    card = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card.count("<!-- drgrader:external") == 1 and "### clinic-shifted (" in card and "### clinic-b (" not in card
    # ... and over another bundle's evaluation, that bundle's card stops naming the folder.
    assert evaluate(other, clinic, "--out", str(out), "--overwrite") == 0
    assert f"`{out.resolve()}`" not in (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    # A run folder is never an evaluation's, even with --overwrite (before, probe 28: the evaluation's files
    # were written among the run's own, its metrics and report lost).
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    assert evaluate(bundle, clinic, "--out", str(run), "--overwrite") == 2
    assert "is a run folder: an evaluation is never written into one, even with --overwrite" in error_line(capsys)
    assert (run / "metrics.json").read_text() == "{}"


def test_evaluate_out_inside_a_run_or_over_a_plain_folder_is_refused(tiny_bundle, clinic, tmp_path, capsys):
    """Probe 29 Z10: ``--out RUN/figures --overwrite`` (or checkpoints, logs, a fold's folder) wrote
    an evaluation among the run's own files; ``--overwrite`` onto a plain folder of the user's merged
    into it, keeping its files, though it says it replaces evaluation folders."""
    bundle = tmp_path / "tiny"  # a copy: the evaluation writes its card
    shutil.copytree(tiny_bundle, bundle)
    run = tmp_path / "run"
    for sub in ("checkpoints", "figures", "logs"):
        (run / sub).mkdir(parents=True)
        (run / sub / "kept.txt").write_text("run's own")
    for out in (run / "figures", run / "checkpoints", run / "logs", run / "figures" / "new", run / "fold-0"):
        assert evaluate(bundle, clinic, "--out", str(out), "--overwrite") == 2
        line = error_line(capsys)
        assert "is inside a run folder" in line and "never written among its files" in line, line
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "figures", "kept.txt", "kept.txt", "kept.txt", "logs"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert evaluate(bundle, clinic, "--out", str(mine), "--overwrite") == 2
    assert "--overwrite replaces an earlier evaluation folder only" in error_line(capsys)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # A new evaluation folder directly in a run stays allowed (the default RUN/eval-D is one).
    assert evaluate(bundle, clinic, "--out", str(run / "eval-clinic")) == 0


def test_evaluate_on_the_models_own_training_photos_is_never_called_external(tiny_bundle, other_tiny_bundle, clinic,
                                                                             tmp_path, caplog, capsys):
    """Probe 29 Z1: ``evaluate BUNDLE --data D`` on the data the bundle was trained on (or a byte
    copy of it) said the figures were measured on "an external data set that the model never saw"
    and filed them on the model card as an external evaluation."""
    import pandas as pd

    from drgrader.evaluation.training_overlap import TRAINING_DIGESTS, digest

    photos = sorted((clinic / "images").iterdir())
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    (run / "config.yaml").write_text("name: run\n")
    ids = [p.stem for p in photos]
    pd.DataFrame({"image_id": ids, "path": [str(p) for p in photos]}).to_csv(run / "manifest.csv", index=False)
    splits = ["train", "train", "val"] + ["test"] * (len(photos) - 3)  # 3 seen; the test split was not
    pd.DataFrame({"image_id": ids, "split": splits}).to_csv(run / "split.csv", index=False)
    copy = tmp_path / "clinic-copy"
    shutil.copytree(clinic, copy)
    for data in (clinic, copy):
        out = tmp_path / f"eval-{data.name}"
        caplog.clear()
        assert evaluate(run / "bundle", data, "--out", str(out)) == 0
        err = caplog.text
        assert f"3 of {len(photos)} evaluated photos were used to train or tune this model" in err, err
        assert "MODEL_CARD.md" in err and "not updated" in err
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["training_overlap"]["photos"] == 3
        assert metrics["evaluated_on"] == f"not-external:{data}"  # probe 33 BV3: it said "external:" to scripts
        report = (out / "report.md").read_text(encoding="utf-8")
        assert "never saw" not in report and f"3 of {len(photos)} photos were used to train or tune" in report
        # Probe 31 C1: the printed summary said "evaluated on: external:..." right after the warning.
        printed = capsys.readouterr().out
        assert f"evaluated on: {data} (not external: 3 of {len(photos)} photos trained or tuned the model)" in printed, printed
    card = run / "bundle" / "MODEL_CARD.md"
    assert not card.exists() or "<!-- drgrader:external" not in card.read_text(encoding="utf-8")
    # Probe 45 CI1: its run's own held-out test photos alone: not trained on, but no outside data set either.
    held = tmp_path / "held-out"
    shutil.copytree(clinic, held)
    labels = next(f for f in held.iterdir() if f.suffix == ".csv")
    rows = labels.read_text().splitlines()
    labels.write_text("\n".join([rows[0], *(r for r in rows[1:] if not any(r.startswith(i) for i in ids[:3]))]) + "\n")
    for photo in photos[:3]:
        (held / "images" / photo.name).unlink()
    caplog.clear()
    assert evaluate(run / "bundle", held, "--out", str(tmp_path / "eval-held")) == 0
    n = len(photos) - 3
    assert f"MODEL_CARD.md of {run / 'bundle'} not updated: {n} of {n} evaluated photos are its own run's held-out test split" in caplog.text
    assert f"(not an outside data set: {n} of {n} photos are the model's own run's held-out test split)" in capsys.readouterr().out
    assert "are the model's own run's held-out test split, whose figures it gives already: not an outside data set" in (
        tmp_path / "eval-held" / "report.md").read_text(encoding="utf-8")
    assert not card.exists() or "<!-- drgrader:external" not in card.read_text(encoding="utf-8")
    # The same bundle away from its run: train wrote the digests of its held-out photos into it.
    from drgrader.evaluation.training_overlap import HELD_OUT_DIGESTS, write_training_digests

    write_training_digests(run, run / "bundle")
    assert (run / "bundle" / HELD_OUT_DIGESTS).read_text().count("\n") == n
    away = tmp_path / "away"
    shutil.copytree(run / "bundle", away)
    caplog.clear()
    assert evaluate(away, held, "--out", str(tmp_path / "eval-away")) == 0
    assert f"not updated: {n} of {n} evaluated photos are its own run's held-out test split" in caplog.text
    # A bundle without its run folder, with the digests of its training photos (as the built-in grader ships).
    bare = tmp_path / "bare"
    shutil.copytree(tiny_bundle, bare)
    (bare / TRAINING_DIGESTS).write_text("".join(digest(p) + "\n" for p in photos[:2]))
    caplog.clear()
    assert evaluate(bare, copy, "--out", str(tmp_path / "eval-bare")) == 0
    assert f"2 of {len(photos)} evaluated photos were used to train" in caplog.text
    # An ensemble made of it: its members' records together.
    assert main(["ensemble", str(bare), str(other_tiny_bundle), "--out", str(tmp_path / "ens")]) == 0
    caplog.clear()
    assert evaluate(tmp_path / "ens", copy, "--out", str(tmp_path / "eval-ens")) == 0
    assert f"2 of {len(photos)} evaluated photos were used to train" in caplog.text


def test_evaluate_of_the_built_in_grader_leaves_the_package_alone(clinic, tmp_path, monkeypatch):
    from drgrader.inference.builtin import DEFAULT_GRADER, builtin_graders

    package = builtin_graders()[DEFAULT_GRADER]
    before = {p.name: p.read_bytes() for p in package.iterdir()}
    monkeypatch.chdir(tmp_path)
    assert evaluate(DEFAULT_GRADER, clinic) == 0  # by name
    assert {p.name: p.read_bytes() for p in package.iterdir()} == before
    assert not list(package.parent.glob(f"{DEFAULT_GRADER}-eval*"))
    out = tmp_path / f"{DEFAULT_GRADER}-eval-clinic-b"
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")  # the built-in card with this data set's entry
    assert card.startswith(before["MODEL_CARD.md"].decode().splitlines()[0]) and card.count("### clinic-b (") == 1


# Root writes anywhere: as root, the command runs without the capability to override permissions.
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search", "--"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or (os.geteuid() == 0 and not shutil.which("setpriv")),
                    reason="POSIX permissions (as root: needs setpriv to drop CAP_DAC_OVERRIDE)")
def test_evaluate_of_a_read_only_bundle_writes_beside_it_or_says_why_in_one_line(tiny_bundle, clinic, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_bundle, models / "tiny")
    prefix = NO_OVERRIDE if os.geteuid() == 0 else []

    def run() -> subprocess.CompletedProcess:
        command = [*prefix, sys.executable, "-m", "drgrader", "evaluate", str(models / "tiny"), "--data", str(clinic),
                   "--set", "eval.bootstrap=5"]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)

    os.chmod(models / "tiny", 0o555)
    try:
        done = run()
        assert done.returncode == 0, done.stderr[-2000:]
        assert (models / "tiny-eval-clinic-b" / "metrics.json").is_file()
        assert "MODEL_CARD.md not updated" in done.stderr and not (models / "tiny" / "MODEL_CARD.md").exists()
        os.chmod(models, 0o555)  # nowhere to write beside it either
        done = run()
    finally:
        os.chmod(models, 0o755)
        os.chmod(models / "tiny", 0o755)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("error: cannot write"), done.stderr[-2000:]
    assert f"{models} is read-only for this user; choose another --out" in lines[-1] and "Errno" not in done.stderr
    assert sorted(p.name for p in models.iterdir()) == ["tiny", "tiny-eval-clinic-b"]


# --------------------------------------------------------- messages name real options
def _options(command: list[str]) -> set[str]:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command[0]]  # type: ignore[union-attr]
    if command[0] in ("data", "config"):
        sub = sub._subparsers._group_actions[0].choices[command[1]]  # type: ignore[union-attr]
    return {s for action in [*sub._actions, *parser._actions] for s in action.option_strings}


def test_error_messages_name_only_options_the_command_has(tiny_bundle, tmp_path, capsys):
    photo = tmp_path / "a.jpeg"
    photo.write_bytes(b"not a photo")
    (tmp_path / "x.json").write_text("{}")
    run = tmp_path / "run"
    (run / "bundle").mkdir(parents=True)
    commands = [
        ["explain", str(tiny_bundle), str(photo), "--out", str(run)],  # explain has no --overwrite
        ["export", str(tiny_bundle), "--out", str(run)],
        ["evaluate", str(tiny_bundle), "--data", str(tmp_path), "--out", str(run)],
        ["predict", str(tiny_bundle), str(photo), "--out", str(tmp_path / "x.json")],
        ["predict", str(tiny_bundle), str(photo), "--refer-share", "0.9"],
        ["cv", "demo", "--folds", "1"],
        ["preprocess", "demo", "--shard", "3/2"],
        ["merge-predictions", str(tmp_path / "none.csv"), "--out", str(tmp_path / "m.csv")],
    ]
    for command in commands:
        assert main(command) == 2, command
        line = error_line(capsys)
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
        assert named <= _options(command), (command, line)


@pytest.mark.parametrize("text", ["\uff11/2", "0/\u0662", " 0/2", "0/2/3", "00/2", "1/08"])
def test_a_shard_is_plain_decimal(text):
    from drgrader.workflows.data import parse_shard

    with pytest.raises(ConfigError, match="must look like i/n"):
        parse_shard(text)


# Probe 29: int() and float() read '２' as 2, '1_6' as 16, '０.１' as 0.1: `cv --folds ２` ran 2 folds.
@pytest.mark.parametrize("option, value", [
    ("--folds", "\uff12"), ("--fold", "\u0661"), ("--batch-size", "1_6"), ("--batch-size", " 16"), ("--batch-size", "016"),
    ("--batch-size", "1e1"), ("--refer-share", "\uff10.\uff11"), ("--refer-share", "0.1_0"), ("--refer-share", "nan"),
    ("--workers", "\uff12"), ("--seed", "1_0"), ("--port", "\uff17\uff18\uff16\uff10"), ("--read-timeout", "3_0"),
    ("--max-upload-mb", "\uff15"), ("--num-nodes", "\uff12"), ("--patients", "1_0"),
])
def test_command_line_numbers_are_plain_decimal_as_shards_and_config_values_are(option, value, capsys):
    command = {"--folds": ["cv", "demo"], "--fold": ["cv", "demo"], "--workers": ["preprocess", "demo"],
               "--num-nodes": ["train", "demo"], "--patients": ["demo"], "--seed": ["synth", "--out", "x"],
               "--port": ["serve"], "--read-timeout": ["serve"], "--max-upload-mb": ["serve"]}.get(option, ["predict", "p.jpeg"])
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*command, option, value])
    assert stop.value.code == 2
    assert f"argument {option}: {value!r} is not " in capsys.readouterr().err
    args = build_parser().parse_args(["predict", "p.jpeg", "--batch-size", "16", "--refer-share", "0.1"])
    assert (args.batch_size, args.refer_share) == (16, 0.1)  # plain numbers as before


# "03", "-0", "-0.0" and "3.50" were read as 3, 0, 0 and (not whole) refused with another message.
@pytest.mark.parametrize("grade", ["0_3", "\u0663", "\uff13", "3e0", "3.", "+3", "0x3", "three", "03", "-0", "-0.0", "00",
                                   "3.50", "3.5", "5"])
def test_a_label_grade_is_plain_decimal(tmp_path, grade):
    from drgrader.data.manifest import DataError, read_dataset

    (tmp_path / "images").mkdir()
    for name in ("10_left", "10_right"):
        (tmp_path / "images" / f"{name}.png").write_bytes(b"not read here")
    (tmp_path / "trainLabels.csv").write_text(f"image,level\n10_left,0\n10_right,{grade}\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"trainLabels.csv row 2 (image '10_right'): grade {grade!r} is not one of 0, 1, 2, 3, 4")):
        read_dataset(tmp_path)
    # A whole number written as a float is a spreadsheet export's grade, read on purpose.
    (tmp_path / "trainLabels.csv").write_text("image,level\n10_left,0.00\n10_right,3.0\n", encoding="utf-8")
    assert list(read_dataset(tmp_path)["grade"]) == [0, 3]


@pytest.mark.parametrize("cell", ["False", "no", "FALSE", "yes", "2"])
def test_a_messidor2_gradable_cell_other_than_0_or_1_is_refused_naming_the_row(tmp_path, cell):
    """Probe 32 B9: `adjudicated_gradable` 'False' or 'no' (a spreadsheet's boolean) was read as
    gradable: the ungradable photo kept with its grade, trained and evaluated on."""
    from data.test_manifest import make_messidor2

    from drgrader.data.manifest import DataError, read_dataset

    root = make_messidor2(tmp_path / "m")
    labels = root / "messidor_data.csv"
    labels.write_text(labels.read_text().replace("IM000001.jpg,3,1,1", f"IM000001.jpg,3,1,{cell}"))
    with pytest.raises(DataError, match=rf"row 3 \(image 'IM000001'\): adjudicated_gradable '{cell}' is not one of 0, 1$"):
        read_dataset(root, "messidor2")


def test_data_summary_of_a_limited_data_set_says_so(synth_dir, capsys):
    """Probe 44 CH7: `data summary --set data.limit=5` gave "10 images of 5 patients" as the data set's."""
    assert main(["data", "summary", "demo", "--set", f"data.root={synth_dir}", "--set", "data.limit=5"]) == 0
    assert "The data set was cut to its first 5 patients (data.limit): the rest are not counted above." in capsys.readouterr().out


def test_data_summary_refuses_a_split_file_that_train_would_refuse(synth_dir, tmp_path, capsys):
    """Probe 32 B15: `data summary` drew its split table from a split file putting a patient's two
    eyes in train and test, without a word; train refuses the same file."""
    import pandas as pd

    ids = pd.read_csv(synth_dir / "trainLabels.csv")["image"]
    split = pd.DataFrame({"image_id": ids, "patient_id": ids.str.rsplit("_", n=1).str[0], "split": "train"})
    left = ids[ids.str.endswith("_left")].iloc[0]
    split.loc[split["image_id"] == left.replace("_left", "_right"), "split"] = "test"
    split.to_csv(tmp_path / "split.csv", index=False)
    assert main(["data", "summary", "demo", "--set", f"data.root={synth_dir}",
                 "--set", f"data.split.file={tmp_path / 'split.csv'}"]) == 2
    assert "1 patients have images in more than one split" in capsys.readouterr().err
