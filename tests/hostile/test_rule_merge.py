"""Rule 3 of issue 22: a merge verifies what it merges. `merge-predictions` checks every part
against the record its `predict --shard` wrote (run, bundle, inputs, row count, checksums);
refuses a part changed since, a part of another run, bundle or inputs, a part without a record
(unless --unverified); and holds and writes its output as predict does."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from drgrader.cli import main
from drgrader.data.manifest import DataError
from drgrader.outputs import OutputError, exclusive
from drgrader.workflows.merge import merge_predictions
from drgrader.workflows.predict import predict_command

from .corpus import photo_bytes


@pytest.fixture(scope="module")
def run(tiny_bundle, tmp_path_factory):
    """A folder of 8 photos (4 patients, both eyes) graded as shards 0/2 and 1/2, and unsharded."""
    root = tmp_path_factory.mktemp("merge")
    photos = root / "photos"
    photos.mkdir()
    for p in range(1, 5):
        for k, eye in enumerate(("left", "right")):
            (photos / f"{p}_{eye}.jpeg").write_bytes(photo_bytes((p + k) % 5, 10 * p + k))
    parts = [predict_command(tiny_bundle, [photos], shard=(i, 2), out=root / "parts" / f"p-{i}.csv") for i in range(2)]
    whole = predict_command(tiny_bundle, [photos], out=root / "whole.csv")
    return {"root": root, "photos": photos, "parts": parts, "whole": whole}


def copy_part(part, folder):
    """A part with its patients file and record, copied into ``folder``."""
    folder.mkdir(exist_ok=True)
    for suffix in (".csv", "_patients.csv", "_shard.json"):
        shutil.copy(part.with_name(part.stem + suffix), folder / f"{part.stem}{suffix}")
    return folder / part.name


def refused(parts, out, capsys, *flags) -> str:
    assert main(["merge-predictions", *map(str, parts), "--out", str(out), *flags]) == 2
    assert not out.exists() and not out.with_name(out.stem + "_patients.csv").exists()
    return capsys.readouterr().err


def test_the_shards_of_one_run_merge_into_what_one_run_writes(run, tmp_path):
    record = json.loads(run["parts"][0].with_name("p-0_shard.json").read_text())
    assert record["shard"] == [0, 2] and record["inputs"]["photos"] == 8 and len(record["run"]["bundle_sha256"]) == 64
    assert record["part"]["rows"] == len(pd.read_csv(run["parts"][0])) and record["patients"]["rows"] >= 1
    merged = merge_predictions(run["parts"], tmp_path / "all.csv")
    pd.testing.assert_frame_equal(pd.read_csv(merged), pd.read_csv(run["whole"]), check_exact=False, rtol=1e-5, atol=1e-6)


def test_the_same_part_given_twice_is_named_not_its_neighbour(run, tmp_path, capsys):
    # Probe 32 A9: `merge-predictions p-0.csv p-0.csv p-1.csv` blamed p-1.csv (p-0's row count
    # checked against p-1's record) and advised running shard 1 again.
    p0, p1 = run["parts"]
    err = refused([p0, p0, p1], tmp_path / "m.csv", capsys)
    assert f"error: merge-predictions: {p0} given twice; give each part once" in err and str(p1) not in err
    err = refused([p0, p1, p0.parent / ".." / p0.parent.name / p0.name], tmp_path / "m.csv", capsys)
    assert f"given twice (as {p0}); give each part once" in err


def test_a_part_with_a_row_missing_or_a_cell_changed_is_refused(run, tmp_path, capsys):
    short = copy_part(run["parts"][0], tmp_path / "short")
    lines = short.read_text().splitlines(keepends=True)
    short.write_text("".join(lines[:-1]))  # the last photo's row gone
    err = refused([short, run["parts"][1]], tmp_path / "m.csv", capsys)
    assert f"{short} is not what shard 0/2 wrote ({len(lines) - 2} rows, its record says {len(lines) - 1}" in err

    edited = copy_part(run["parts"][0], tmp_path / "edited")
    table = pd.read_csv(edited, dtype=str, keep_default_na=False)
    table.loc[0, "grade"] = "4" if table.loc[0, "grade"] != "4" else "0"
    table.to_csv(edited, index=False)
    assert "its content changed" in refused([edited, run["parts"][1]], tmp_path / "m.csv", capsys)

    patients = copy_part(run["parts"][0], tmp_path / "patients")
    file = patients.with_name("p-0_patients.csv")
    decisions = pd.read_csv(file, dtype=str, keep_default_na=False)
    decisions.loc[0, "decision"] = "urgent" if decisions.loc[0, "decision"] != "urgent" else "negative"
    decisions.to_csv(file, index=False)
    assert "p-0_patients.csv is changed since its shard wrote it" in refused([patients, run["parts"][1]], tmp_path / "m.csv", capsys)


def test_a_part_that_is_not_one_of_the_runs_shards_is_refused(run, tiny_bundle, tmp_path, capsys):
    # An unsharded run's output (no record): refused, unless asked for with --unverified.
    err = refused([run["parts"][0], run["whole"]], tmp_path / "m.csv", capsys, "--partial")
    assert "whole.csv has no shard record (whole_shard.json)" in err and "--unverified" in err
    # A foreign CSV given the record of a real shard: its checksum does not match.
    foreign = copy_part(run["parts"][1], tmp_path / "foreign")
    shutil.copy(run["whole"], foreign)
    assert "is not what shard 1/2 wrote" in refused([run["parts"][0], foreign], tmp_path / "m.csv", capsys)
    # A shard of another bundle (same photos, other thresholds), another refer share, other inputs.
    other = shutil.copytree(tiny_bundle, tmp_path / "other-bundle")
    manifest = json.loads((other / "bundle.json").read_text())
    manifest["thresholds"]["referable"] = 0.6
    (other / "bundle.json").write_text(json.dumps(manifest))
    of_other = predict_command(other, [run["photos"]], shard=(1, 2), out=tmp_path / "b" / "p-1.csv")
    assert "differ in bundle, backend, TTA or refer share" in refused([run["parts"][0], of_other], tmp_path / "m.csv", capsys)
    more = shutil.copytree(run["photos"], tmp_path / "more")
    (more / "9_left.jpeg").write_bytes(photo_bytes(2, 99))
    other_share = predict_command(tiny_bundle, [run["photos"]], shard=(1, 2), out=tmp_path / "s" / "p-1.csv", refer_share=0.0)
    assert "differ in bundle, backend, TTA or refer share" in refused([run["parts"][0], other_share], tmp_path / "m.csv", capsys)
    wider = predict_command(tiny_bundle, [more], shard=(1, 2), out=tmp_path / "w" / "p-1.csv")
    assert "differ in inputs" in refused([run["parts"][0], wider], tmp_path / "m.csv", capsys)
    # Probe 59 CW4: a photo replaced by another picture between the shards' runs (same names, patients, eyes).
    day = shutil.copytree(run["photos"], tmp_path / "day")
    before = predict_command(tiny_bundle, [day], shard=(0, 2), out=tmp_path / "r" / "p-0.csv")
    sorted(day.glob("*.jpeg"))[0].write_bytes(photo_bytes(4, 77) + b"\0" * 10)  # another picture, another size
    after = predict_command(tiny_bundle, [day], shard=(1, 2), out=tmp_path / "r" / "p-1.csv")
    assert "differ in inputs" in refused([before, after], tmp_path / "m.csv", capsys)


def test_shards_graded_by_two_backends_are_refused(tiny_bundle, run, tmp_path, capsys):
    """Probe 34 AX6: shards graded with ONNX and with torch (a node without onnxruntime falls back)
    were merged without a word: one run's figures from two engines (a built-in grader's float16
    weights beside its float32 graph). A resume: test_rule_stale_inputs."""
    from drgrader.inference import export

    exported = export.export_command(tiny_bundle, out=tmp_path / "tiny-onnx")
    parts = [predict_command(exported, [run["photos"]], shard=(i, 2), out=tmp_path / f"b{i}" / f"p-{i}.csv",
                             backend=backend) for i, backend in enumerate(("onnx", "torch"))]
    assert "differ in bundle, backend, TTA or refer share" in refused(parts, tmp_path / "m.csv", capsys)
    assert json.loads(parts[0].with_name("p-0_shard.json").read_text())["run"]["backend"] == "onnx:model.onnx"


def test_unverified_merges_a_part_without_a_record_with_a_warning(run, tmp_path, caplog):
    lone = copy_part(run["parts"][1], tmp_path / "lone")
    lone.with_name("p-1_shard.json").unlink()
    with pytest.raises(DataError, match="has no shard record"):
        merge_predictions([run["parts"][0], lone], tmp_path / "m.csv")
    out = merge_predictions([run["parts"][0], lone], tmp_path / "m.csv", unverified=True)
    assert len(pd.read_csv(out)) == 8
    assert any("without a shard record unchecked (--unverified)" in r.getMessage() for r in caplog.records)
    # The parts that have a record are still verified.
    bad = copy_part(run["parts"][0], tmp_path / "bad")
    bad.write_text("".join(bad.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match="is not what shard 0/2 wrote"):
        merge_predictions([bad, lone], tmp_path / "m2.csv", unverified=True)


def test_the_merged_output_is_locked_and_replaced_whole(run, tmp_path):
    out = tmp_path / "all.csv"
    earlier = run["parts"][0].read_text().splitlines()[0] + "\nan earlier merge\n"
    out.write_text(earlier)  # a merged file (its header): one merge may replace
    with exclusive(out), pytest.raises(OutputError, match="another drgrader command is writing"):
        merge_predictions(run["parts"], out)
    short = copy_part(run["parts"][0], tmp_path / "short")
    short.write_text("".join(short.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError):
        merge_predictions([short, run["parts"][1]], out)
    assert out.read_text() == earlier  # a refused merge leaves the old file as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.csv", "short"]  # no lock or temporary file left
    merge_predictions(run["parts"], out)
    assert len(pd.read_csv(out)) == 8


def test_shards_that_spell_out_the_bundles_own_views_are_one_run(run, tiny_bundle, tmp_path):
    # Before: the record held --tta as given (None against ["orig"]): "differ in bundle, backend, TTA or refer share".
    spelled = predict_command(tiny_bundle, [run["photos"]], shard=(1, 2), tta=["orig"], out=tmp_path / "p-1.csv")
    merged = merge_predictions([run["parts"][0], spelled], tmp_path / "all.csv")
    assert len(pd.read_csv(merged)) == 8


@pytest.mark.parametrize("versions", [{"drgrader": "0.1.0", "photo_checks": 7}, None])
def test_shards_graded_by_two_drgrader_versions_are_refused_by_name(run, tmp_path, capsys, versions):
    # Probe 30 F4: shards graded before and after an upgrade (the compression check) merged without
    # a word, one shard's copies gradable, the other's not. Each record names its versions.
    old = copy_part(run["parts"][0], tmp_path)
    record = json.loads(old.with_name("p-0_shard.json").read_text())
    assert record["versions"]["photo_checks"] >= 8
    if versions is None:  # a record written before versions were recorded
        del record["versions"]
    else:
        record["versions"] = versions
    old.with_name("p-0_shard.json").write_text(json.dumps(record))
    err = refused([old, run["parts"][1]], tmp_path / "all.csv", capsys)
    named = "drgrader 0.1.0, photo checks 7" if versions else "an unknown drgrader version"
    assert f"merge-predictions: {old} ({named}" in err and "were graded by two drgrader versions" in err
