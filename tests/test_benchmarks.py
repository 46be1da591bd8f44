"""Smoke tests of the benchmark scripts: each runs end to end on tiny inputs, as the lead runs it
(a subprocess with its command-line flags), and writes the JSON it promises."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
FIGURES = {"kappa", "accuracy", "any_dr_auc", "referable_auc", "referable_sens_at_90_spec",
           "patient_referable_sens_at_85_spec"}


def quality_args(tmp: Path, data: Path) -> tuple[list, Path]:
    out = tmp / "results" / "quality.json"
    return [
        "--config", "seed000_resnet_grades",
        "--set", "model.backbone=test_resnet", "--set", "model.pretrained=none",
        "--set", "data.image_size=48", "--set", "data.workers=1", "--set", f"data.cache_dir={tmp / 'cache'}",
        "--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "eval.bootstrap=10",
        "--data", data, "--external", data, "--label", "smoke", "--out", out, "--runs", tmp / "runs",
    ], out


def training_speed_args(tmp: Path, data: Path) -> tuple[list, Path]:
    out = tmp / "speed.json"
    return [
        "--backbones", "test_resnet", "--size", 48, "--batch-size", 4, "--steps", 2, "--warmup", 1,
        "--data", data, "--set", f"data.cache_dir={tmp / 'cache'}", "--set", "data.workers=1", "--out", out,
    ], out


def inference_args(tmp: Path, data: Path) -> tuple[list, Path]:
    out = tmp / "inference.json"
    return ["--backbone", "test_resnet", "--size", 48, "--batch-size", 2, "--seconds", 0.2, "--out", out], out


def preprocess_args(tmp: Path, data: Path) -> tuple[list, Path]:
    out = tmp / "preprocess.json"
    return [
        "--images", 2, "--height", 256, "--size", 48, "--workers", 1, "--repeats", 1, "--label", "smoke", "--out", out,
    ], out


def precision_args(tmp: Path, data: Path) -> tuple[list, Path]:
    out = tmp / "precision.json"
    return ["--backbone", "test_resnet", "--size", 48, "--batch-size", 4, "--steps", 2, "--warmup", 1,
            "--settings", "fp32, channels_last", "bf16 autocast, channels_last", "--out", out], out


def clinic_args(tmp: Path, data: Path) -> tuple[list, Path]:
    """A tiny random-weight PyTorch bundle (the script exports it to ONNX) and 3 synthetic patients."""
    import torch

    from drgrader.config import ExperimentConfig, config_to_dict
    from drgrader.inference.bundle import save_bundle
    from drgrader.models.factory import GraderNet, ScoringNet, input_mean_std

    cfg = ExperimentConfig.model_validate({"data": {"image_size": 48}, "model": {"backbone": "test_resnet"},
                                           "eval": {"tta": ["orig", "hflip"]}})
    torch.manual_seed(0)
    net = GraderNet("test_resnet", task="grade", kind="softmax5").eval()
    bundle = save_bundle(tmp / "tiny" / "bundle", ScoringNet(net, *input_mean_std("test_resnet", "model")),
                         config=config_to_dict(cfg), thresholds={"any_dr": 0.5, "referable": 0.5})
    out = tmp / "results" / "clinic.json"
    return [
        "--bundle", bundle, "--photos", "synthetic", "--patients", 3, "--height", 400, "--batch-size", 2,
        "--decode-threads", 1, 2, "--idle-requests", 2, "--clients", 2, "--requests", 4, "--label", "smoke", "--out", out,
    ], out


# script -> its smoke arguments; the test of bench_X.py is test_bench_X_smoke.
def pixel_copies_args(tmp: Path, data: Path) -> tuple[list, Path]:
    out = tmp / "pixel_copies.json"
    return ["--data", data.parent, "--limit", 8, "--pairs", 50, "--compare", 200, "--out", out], out


SMOKE_RUNS = {
    "bench_clinic.py": clinic_args,
    "bench_precision.py": precision_args,
    "bench_quality.py": quality_args,
    "bench_training_speed.py": training_speed_args,
    "bench_inference.py": inference_args,
    "bench_preprocess.py": preprocess_args,
    "bench_pixel_copies.py": pixel_copies_args,
}


def start_script(name: str, args: list, cwd: Path) -> subprocess.Popen:
    """``python benchmarks/<name> args`` from ``cwd`` (so stray default outputs land there)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": "100000000000",
    }
    env.pop("DRGRADER_RUN_DIR", None)  # set by in-process train() calls of other tests
    return subprocess.Popen(
        [sys.executable, str(BENCH / name), *map(str, args)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def smoke_runs(request, synth_dir, tmp_path_factory):
    """Start the smoke run of every selected benchmark test at once; each test waits for its own.
    Most of a smoke run is single-threaded Python start-up (importing torch and Lightning), so
    side by side they take about half the time on 2 cores."""
    selected = {item.name for item in request.session.items}
    runs = {}
    for script, make_args in SMOKE_RUNS.items():
        if f"test_{Path(script).stem}_smoke" in selected:
            tmp = tmp_path_factory.mktemp(Path(script).stem)
            args, out = make_args(tmp, synth_dir)
            runs[script] = (start_script(script, args, tmp), out)
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finish(smoke_runs: dict, script: str) -> tuple[str, Path]:
    """Wait for a smoke run; its stdout and the JSON path it was told to write."""
    proc, out = smoke_runs[script]
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return stdout, out


@pytest.fixture
def bench_modules(monkeypatch):
    """The benchmark scripts import their helpers as ``common`` (their folder is on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_quality
    import common

    return bench_quality, common


@pytest.mark.slow
def test_bench_quality_smoke(smoke_runs):
    stdout, out = finish(smoke_runs, "bench_quality.py")
    row = json.loads(out.read_text())["smoke"]
    # The seed000 config keeps no test split: the run reports on its validation images.
    split = pd.read_csv(Path(row["run_dir"]) / "split.csv")
    assert row["evaluated_on"] == "val"
    assert row["n_images"] == (split["split"] == "val").sum()
    assert row["split"] == {"method": "patient", "seed": 42}
    assert row["epochs_run"] == 1 and row["train_wall_s"] > 0
    assert row["machine"]["cores"] >= 1 and row["machine"]["gpu"]
    assert "--label smoke" in row["command"] and row["date"]
    # The external evaluation scores every image of the external folder (80 synthetic ones). The smoke
    # gives its training folder as --external, which evaluate says is not external (probe 33 BV3).
    assert row["external"]["n_images"] == 80 and row["external"]["n_patients"] == 40
    assert row["external"]["evaluated_on"].startswith("not-external:")
    for figures in (row["figures"], row["external"]["figures"]):
        assert set(figures) == FIGURES
        for name, fig in figures.items():
            low = -1.0 if name == "kappa" else 0.0
            assert low <= fig["value"] <= 1.0, name
            assert len(fig["ci"]) == 2 and fig["ci"][0] <= fig["ci"][1], name
    md = out.with_suffix(".md").read_text()
    assert "| smoke | val |" in md and row["command"] in md
    assert "smoke:" in stdout


@pytest.mark.slow
def test_bench_training_speed_smoke(smoke_runs):
    _, out = finish(smoke_runs, "bench_training_speed.py")
    report = json.loads(out.read_text())
    r = report["results"]["test_resnet"]
    for mode in ("bare", "loop"):
        assert r[mode]["steps"] == 2 and r[mode]["images"] == 8, mode
        assert r[mode]["images_per_s"] == pytest.approx(8 / r[mode]["seconds"])
    assert r["loop_vs_bare"] == pytest.approx(r["loop"]["images_per_s"] / r["bare"]["images_per_s"])
    assert r["within_target"] == (r["loop_vs_bare"] >= 0.9)
    assert 0 < r["peak_rss_mb"]["after_bare"] <= r["peak_rss_mb"]["after_loop"]
    assert r["torch_threads"] == report["machine"]["cores"]
    assert report["settings"]["size"] == 48 and report["settings"]["batch_size"] == 4


@pytest.mark.slow
def test_bench_inference_smoke(smoke_runs):
    _, out = finish(smoke_runs, "bench_inference.py")
    report = json.loads(out.read_text())
    assert report["input_size"] == 48 and report["batch_size"] == 2
    for backend in ("torch", "onnx"):
        assert report["results"][backend]["batches"] >= 3
        assert report["results"][backend]["images_per_s"] > 0
        assert report["results"][backend]["peak_rss_mb"] > 50  # a fresh process with the backend loaded
    assert report["onnx_speedup"] == pytest.approx(
        report["results"]["onnx"]["images_per_s"] / report["results"]["torch"]["images_per_s"]
    )


@pytest.mark.slow
def test_bench_preprocess_smoke(smoke_runs):
    _, out = finish(smoke_runs, "bench_preprocess.py")
    report = json.loads(out.read_text())["smoke"]
    assert report["images"] == 2 and report["size"] == 48
    rates = report["per_process_images_per_s"]
    assert rates["cache"] > 0 and rates["plain"] > 0
    assert report["speedup"] == pytest.approx(rates["cache"] / rates["plain"], rel=0.05)
    assert set(report["build_cache_images_per_s_by_workers"]) == {"1"}
    assert set(report["cache_format_ms"]) == {"npy", "png1", "png3"}
    assert all(report["peak_rss_mb_one_process"][p] > 20 for p in ("cache", "plain"))


def test_bench_pixel_copies_smoke(smoke_runs):
    _, out = finish(smoke_runs, "bench_pixel_copies.py")
    report = json.loads(out.read_text())
    assert report["photos"] == 8 and set(report["copies"]) == {"png", "jpeg_q90", "jpeg_q75", "half_size", "size_70pct", "mirror_q90",
                                                          "mirror_q75", "flipped_q90", "turned_90_q90", "turned_180_q90",
                                                          "turned_270_q90"}
    assert all(s["n"] == 8 for s in report["copies"].values()) and report["fellow_eyes"]["any_orientation"]["n"] >= 1
    assert report["margins"]["farthest_copy"] < report["threshold"] < report["margins"]["nearest_other_patient"]
    assert report["close_pairs_found_among_the_photos"] == [] and report["cost"]["fingerprint_ms_per_photo"] > 0


@pytest.mark.slow
def test_bench_precision_smoke(smoke_runs):
    stdout, out = finish(smoke_runs, "bench_precision.py")
    report = json.loads(out.read_text())
    fp32, bf16 = report["results"]["fp32, channels_last"], report["results"]["bf16 autocast, channels_last"]
    assert fp32["images_per_s"] == pytest.approx(2 * 4 / fp32["seconds"], rel=0.02)
    assert fp32["vs_fp32_channels_last"] == 1.0
    assert bf16["bf16"] and bf16["vs_fp32_channels_last"] == pytest.approx(bf16["images_per_s"] / fp32["images_per_s"], abs=0.01)
    assert isinstance(report["machine"]["cpu_features"], list) and "CPU features" in stdout


@pytest.mark.slow
def test_bench_clinic_smoke(smoke_runs):
    stdout, out = finish(smoke_runs, "bench_clinic.py")
    report = json.loads(out.read_text())["smoke"]
    assert report["photos"]["count"] == 6 and report["photos"]["patients"] == 3
    assert report["photos"]["most_common_size"] == "600x400"
    assert report["bundle"]["input_size"] == 48 and report["bundle"]["tta"] == ["orig", "hflip"]
    assert report["bundle"]["backend"] == "onnx" and report["batch_size"] == 2
    predict = report["predict"]
    ceiling = predict["model_ceiling"]
    assert ceiling["photos"] == 6 and ceiling["batches"] == 3
    assert ceiling["photos_per_s"] == pytest.approx(6 / ceiling["seconds"], rel=1e-3)
    assert set(predict["in_process"]) == {"1", "2"}
    for run in [predict["cli"], *predict["in_process"].values()]:
        assert run["photos"] == 6
        assert run["photos_per_s"] == pytest.approx(6 / run["seconds"], rel=1e-3)
        assert run["of_ceiling"] == pytest.approx(run["photos_per_s"] / ceiling["photos_per_s"], rel=1e-3)
        outputs = run["outputs"]  # every photo graded, every patient decided
        assert outputs["rows"] == 6 and outputs["errors"] == 0 and outputs["patients"] == 3
        assert sum(outputs["decisions"].values()) == 3
    assert " predict " in predict["cli"]["command"]

    # The groups of the profile add up to the whole run, each a real share.
    profile = report["profile"]
    groups = profile["groups"]
    assert list(groups) == ["decode", "fundus search + quality + preprocess", "model", "bundle load", "decisions + CSV + rest"]
    assert sum(g["seconds"] for g in groups.values()) == pytest.approx(profile["seconds"], abs=1e-3)
    assert sum(g["share"] for g in groups.values()) == pytest.approx(1, abs=1e-3)
    assert all(0 < g["share"] < 1 for g in groups.values())

    serve = report["serve"]
    assert serve["max_pending"] == 4 and serve["server_tracebacks"] == 0
    assert set(serve["levels"]) == {"idle", "2 clients"}
    for name, level in serve["levels"].items():
        statuses = level["statuses"]
        # Every patient graded once; every other answer a documented 503; the counts add up.
        assert statuses["200"] == level["patients"] and level["errors"] == 0, (name, statuses)
        assert set(statuses) <= {"200", "503"} and sum(statuses.values()) == level["requests"]
        assert level["requests_per_s"] == pytest.approx(level["patients"] / level["seconds"], rel=1e-3)
        for timing in (level["latency_ms"], level["patient_wait_ms"]):
            assert 0 < timing["median"] <= timing["p95"]
    assert serve["levels"]["idle"]["patients"] == 2 and serve["levels"]["2 clients"]["clients"] == 2

    md = out.with_suffix(".md").read_text()
    assert "## smoke" in md and "| idle | 2 |" in md and report["command"] in md
    assert "## smoke" in stdout


@pytest.fixture(scope="module")
def lab_cv(synth_dir, tmp_path_factory):
    """A finished two-fold lab run (every weight set and view scored) on the synthetic data."""
    from drgrader.cli import main

    tmp = tmp_path_factory.mktemp("lab")
    sets = {"data.root": synth_dir, "data.cache_dir": tmp / "cache", "data.format": "kaggle", "data.image_size": 48,
            "data.workers": 1, "model.backbone": "test_resnet", "model.pretrained": "none", "train.epochs": 3,
            "train.batch_size": 8, "train.budget_minutes": "null",  # cpu_grade's budget would plan many tiny epochs
            "train.ema_decay": 0.9, "train.average_last": 2, "eval.lab": "true",
            "eval.tta": "[orig,hflip]", "eval.bootstrap": 20}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    assert main(["cv", "cpu_grade", "--folds", "2", "--out", str(tmp / "cv"), *args]) == 0
    return tmp / "cv"


@pytest.mark.slow
def test_lab_run_is_recorded_and_compared_with_an_earlier_one(lab_cv, tmp_path):
    results = tmp_path / "results" / "lab.json"
    for label, extra in (("first", []), ("second", ["--against", "first"])):
        proc = start_script("bench_lab.py", [lab_cv, "--label", label, "--results", results, "--commit", "abc123", *extra],
                            tmp_path)
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
    recorded = json.loads(results.read_text())
    lab = json.loads((lab_cv / "lab.json").read_text())
    assert recorded["first"]["lab"] == lab and recorded["first"]["commit"] == "abc123"
    assert len(recorded["first"]["folds"]["epochs"]) == 2
    # The same eyes and scores against themselves: a paired difference of exactly zero.
    diff = recorded["second"]["against"]["first"]["single eye"]["kappa"]
    assert diff == [0.0, 0.0, 0.0]
    md = results.with_suffix(".md").read_text()
    assert "## first" in md and "## second" in md and "Against **first**" in md
    oof = pd.read_csv(results.parent / "lab_oof" / "first.csv")
    assert len(oof) == 80 and "path" not in oof


@pytest.mark.slow
def test_a_lever_is_recorded_fold_by_fold_against_a_recorded_recipe(lab_cv, tmp_path):
    results = tmp_path / "results"

    def record(script: str, *args) -> subprocess.CompletedProcess:
        proc = start_script(script, list(args), tmp_path)
        stdout, stderr = proc.communicate(timeout=600)
        return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)

    done = record("bench_lab.py", lab_cv, "--label", "recipe", "--results", results / "lab.json")
    assert done.returncode == 0, done.stderr[-3000:]
    levers = results / "levers.json"
    common = ["--label", "same", "--lever", "nothing", "--against", "recipe", "--bootstrap", 20, "--results", levers]
    # Fold 1 from its fold folder, fold 0 from a predictions CSV: the same grades as the recipe's.
    done = record("bench_lever.py", lab_cv / "fold-1", "--fold", 1, *common)
    assert done.returncode == 0, done.stderr[-3000:]
    csv = tmp_path / "fold0.csv"
    pd.read_csv(lab_cv / "fold-0" / "predictions_val.csv").to_csv(csv, index=False)
    done = record("bench_lever.py", csv, "--fold", 0, *common, "--minutes", 1.5, "--epochs", 3)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(levers.read_text())["same"]
    assert row["folds"] == [0, 1] and row["comparison"]["eyes"] == 80
    assert row["training"]["0"] == {"minutes": 1.5, "epochs_run": 3} and row["training"]["1"]["epochs_run"] == 3
    # The same grades on the same eyes: a paired difference of exactly zero.
    assert row["comparison"]["single eye"]["difference"]["kappa"] == [0.0, 0.0, 0.0]
    assert len(pd.read_csv(results / "lab_oof" / "same.csv")) == 80
    assert "| same | nothing | 0,1 (80) |" in levers.with_suffix(".md").read_text()
    paired = record("bench_pair.py", "same", "recipe", "--results", levers)  # two recorded recipes, paired
    assert paired.returncode == 0, paired.stderr[-3000:]
    assert "folds 0, 1 (80 eyes" in paired.stdout and paired.stdout.count("+0.000 (+0.000 to +0.000)") == 4
    # A fold folder given as another fold is refused: its eyes are not that fold's.
    done = record("bench_lever.py", lab_cv / "fold-0", "--fold", 1, *common)
    assert done.returncode != 0 and "not fold 1" in done.stderr
    # A head whose screening scores are not its expected grade (CORN's probabilities) keeps them.
    ordinal = pd.read_csv(csv).assign(score_referable=lambda t: 1 / (1 + np.exp(2 - t["expected_grade"])))
    ordinal.to_csv(csv, index=False)
    common[1] = "ordinal"
    done = record("bench_lever.py", csv, "--fold", 0, *common, "--minutes", 1.5, "--epochs", 3)
    assert done.returncode == 0, done.stderr[-3000:]
    kept = pd.read_csv(results / "lab_oof" / "ordinal.csv", dtype={"image_id": str}).set_index("image_id")
    sent = ordinal.astype({"image_id": str}).set_index("image_id").loc[kept.index]
    assert np.allclose(kept["score_referable"], sent["score_referable"], atol=1e-5)
    assert not np.allclose(kept["score_referable"], kept["expected_grade"])


@pytest.mark.slow
def test_uncertainty_measures_share_one_referral_rule(lab_cv, tmp_path):
    out = tmp_path / "uncertainty.json"
    proc = start_script("bench_uncertainty.py", [lab_cv, "--share", 0.1, "--bootstrap", 20, "--out", out], tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["measures"]) == {"distance", "tta spread", "snapshot spread", "distance in spreads"}
    assert report["patients"] == 40
    # The reference against itself: no difference, in every resample.
    assert report["measures"]["distance"]["sensitivity_vs_distance"] == [0.0, 0.0, 0.0]
    for r in report["measures"].values():
        assert 0 <= r["errors_caught"] <= 1 and 0 <= r["specificity"][0] <= 1


def test_results_merge_by_label(bench_modules, tmp_path):
    _, common = bench_modules
    path = tmp_path / "results" / "quality.json"
    common.merge_results(path, {"a": {"kappa": 1}})
    common.merge_results(path, {"b": {"kappa": 2}})
    merged = common.merge_results(path, {"a": {"kappa": 3}})
    assert merged == {"a": {"kappa": 3}, "b": {"kappa": 2}}
    assert json.loads(path.read_text()) == merged
    assert list(merged) == ["a", "b"]  # a re-run keeps its row's place
    assert [p.name for p in path.parent.iterdir()] == ["quality.json"]  # no lock or temp files left


def test_results_merge_refuses_a_non_object(bench_modules, tmp_path):
    _, common = bench_modules
    path = tmp_path / "quality.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="quality.json"):
        common.merge_results(path, {"a": {}})


def test_markdown_table_shows_figures_with_cis_and_gaps(bench_modules):
    bench_quality, _ = bench_modules
    row = {
        "evaluated_on": "test",
        "n_images": 120,
        "epochs_run": 7,
        "train_wall_s": 1530.0,
        "figures": {"any_dr_auc": {"value": 0.8123, "ci": [0.7504, 0.86]}, "kappa": {"value": 0.5, "ci": None}},
        "external": {"data": "../shared/data/rahim-originals", "n_images": 180, "figures": {}},
        "date": "2025-01-01T00:00:00+00:00",
        "machine": {"summary": "2 cores (x), no GPU"},
        "run_dir": "runs/bench/screen",
        "command": "python benchmarks/bench_quality.py --config c.yaml --label screen",
    }
    md = bench_quality.render_markdown({"screen": row})
    # kappa (no CI), accuracy (missing), any-DR AUC with CI, referable AUC and both sens. missing.
    assert "| screen | test | 120 | 0.500 | — | 0.812 (0.750–0.860) | — | — | — | 7 | 25.5 min |" in md
    assert "| screen | rahim-originals | 180 | — | — | — | — | — | — |" in md
    assert "`python benchmarks/bench_quality.py --config c.yaml --label screen`" in md
    assert "2025-01-01T00:00:00+00:00, 2 cores (x), no GPU" in md


def test_patient_sensitivity_at_specificity_by_hand(bench_modules):
    bench_quality, _ = bench_modules
    # Patients by their worse eye: a (grade 2, score .9), b (0, .1), c (0, .5), d (3, .4).
    eyes = pd.DataFrame({
        "patient_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
        "grade": [2, 0, 0, 0, 0, 0, 3, 1],
        "score_referable": [0.9, 0.2, 0.1, 0.05, 0.5, 0.3, 0.4, 0.35],
    })
    # >= 85% specificity of 2 healthy patients means both below the threshold (> .5): a found, d missed.
    assert bench_quality.sensitivity_at_specificity(eyes, 0.85, per_patient=True) == 0.5
    # Per eye, 6 healthy eyes: one false positive leaves 5/6 = 83% < 85%, so again only a's eye.
    assert bench_quality.sensitivity_at_specificity(eyes, 0.85, per_patient=False) == 0.5
    # At >= 50% specificity per patient c may be flagged, so the threshold can drop to d's .4.
    assert bench_quality.sensitivity_at_specificity(eyes, 0.5, per_patient=True) == 1.0
