"""`predict --shard i/n` over many machines and `merge-predictions`: the shards are disjoint,
cover every photo, keep a patient's photos together, and merge into what one run writes."""

from __future__ import annotations

import json
import logging
import shutil

import pandas as pd
import pytest

from drgrader.cli import main
from drgrader.data.inputs import collect_inputs
from drgrader.data.manifest import DataError
from drgrader.workflows.merge import merge_predictions
from drgrader.workflows.predict import predict_command, shard_rows

SHARDS = 3


@pytest.fixture(scope="module")
def photos(synth_dir, tmp_path_factory):
    """30 photos of 15 patients (Kaggle names: both eyes), a second folder level, an unreadable photo,
    and two photos whose patient the name does not tell."""
    folder = tmp_path_factory.mktemp("shard") / "photos"
    (folder / "deep").mkdir(parents=True)
    sources = sorted((synth_dir / "images").glob("*.jpeg"))[:30]
    for k, source in enumerate(sources):  # some left eyes one level down, their right eyes not
        shutil.copy(source, (folder / "deep" if k % 4 == 0 else folder) / source.name)
    (folder / "99_left.jpeg").write_bytes(b"not a photo")
    shutil.copy(sources[0], folder / "scan-a.jpeg")
    shutil.copy(sources[1], folder / "scan-b.jpeg")
    return folder


@pytest.fixture(scope="module")
def whole(photos, tiny_bundle, tmp_path_factory):
    """One unsharded run over the folder: the reference."""
    out = tmp_path_factory.mktemp("whole") / "all.csv"
    predict_command(tiny_bundle, [photos], out=out)
    return out


def test_shards_are_disjoint_cover_everything_and_keep_patients_together(photos):
    table = collect_inputs([photos])
    shards = [shard_rows(table, (i, SHARDS)) for i in range(SHARDS)]
    paths = [set(s["path"]) for s in shards]
    assert sum(len(p) for p in paths) == len(table) and set().union(*paths) == set(table["path"])
    assert all(len(s) for s in shards)  # 20-odd photos spread over all three
    patients = [set(s.loc[s["patient_id"] != "", "patient_id"]) for s in shards]
    assert sum(len(p) for p in patients) == len(set().union(*patients))  # no patient in two shards
    # scan-a, scan-b: no patient in the name, each a patient of its own (said so)
    lone = table.set_index("image_id").loc[["scan-a", "scan-b"]]
    assert lone["patient_id"].tolist() == ["scan-a", "scan-b"] and lone["identity_note"].str.startswith("no patient:").all()


def test_merged_shards_equal_one_run(photos, tiny_bundle, whole, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    parts = []
    for i in range(SHARDS):
        parts.append(predict_command(tiny_bundle, [photos], shard=(i, SHARDS)))
    assert [p.name for p in parts] == [f"predictions-shard{i}of{SHARDS}.csv" for i in range(SHARDS)]
    assert all((tmp_path / f"predictions-shard{i}of{SHARDS}_shard.json").is_file() for i in range(SHARDS))

    # Shell-style: the glob also matches the _patients.csv files; they are taken as their parts'.
    given = sorted(tmp_path.glob("predictions-shard*.csv"))
    assert len(given) == 2 * SHARDS
    merged = merge_predictions(given, tmp_path / "merged.csv")

    def same(a, b):
        pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b), check_exact=False, rtol=1e-5, atol=1e-6)

    same(merged, whole)  # rows, their order (by path, as a folder lists them) and every cell
    same(tmp_path / "merged_patients.csv", whole.with_name("all_patients.csv"))

    # A shard missing (or given twice) is refused before anything is written; --partial only warns.
    with pytest.raises(DataError, match=r"shard\(s\) 1 of 3 missing"):
        merge_predictions([parts[0], parts[2]], tmp_path / "two.csv")
    with pytest.raises(DataError, match="given twice"):
        copy = shutil.copy(parts[1], tmp_path / "copy.csv")
        shutil.copy(tmp_path / f"predictions-shard1of{SHARDS}_shard.json", tmp_path / "copy_shard.json")
        shutil.copy(tmp_path / f"predictions-shard1of{SHARDS}_patients.csv", tmp_path / "copy_patients.csv")
        merge_predictions([parts[0], parts[1], copy, parts[2]], tmp_path / "x.csv")
    assert not (tmp_path / "two.csv").exists() and not (tmp_path / "x.csv").exists()


def test_shard_of_another_run_or_overlapping_parts_are_refused(photos, tiny_bundle, whole, tmp_path):
    first = predict_command(tiny_bundle, [photos], shard=(0, 2), out=tmp_path / "a0.csv")
    other = predict_command(tiny_bundle, [photos], shard=(1, 3), out=tmp_path / "b1.csv")
    with pytest.raises(DataError, match="merge the shards of one run"):
        merge_predictions([first, other], tmp_path / "m.csv")
    # A part without a shard record (an unsharded run) is refused; --unverified merges it, but never a photo twice.
    with pytest.raises(DataError, match="all.csv has no shard record .*--unverified"):
        merge_predictions([whole, first], tmp_path / "m.csv", partial=True)
    with pytest.raises(DataError, match="is in .*all.csv"):
        merge_predictions([whole, first], tmp_path / "m.csv", partial=True, unverified=True)
    assert not (tmp_path / "m.csv").exists()


def test_a_shards_part_is_never_replaced_by_another_shard_or_an_unsharded_run(photos, tiny_bundle, tmp_path):
    """Probe 50 BN3: two array tasks given one --out: the second replaced the first's part, patients
    file and record, exit 0, its rows lost."""
    from drgrader.outputs import OutputError

    part = predict_command(tiny_bundle, [photos], shard=(0, 2), out=tmp_path / "p.csv")
    before = part.read_bytes()
    for shard in ((1, 2), None):
        with pytest.raises(OutputError, match=r"--out .*p.csv holds the part of shard 0/2 \(its record p_shard.json\): "
                                              r"give each shard its own --out"):
            predict_command(tiny_bundle, [photos], shard=shard, out=part)
    assert part.read_bytes() == before
    assert predict_command(tiny_bundle, [photos], shard=(0, 2), out=part) == part  # the same shard again: its own
    predict_command(tiny_bundle, [photos], shard=(1, 2), out=part, overwrite=True)  # said: replaced
    assert json.loads((tmp_path / "p_shard.json").read_text())["shard"] == [1, 2]


def test_cli_shard_and_merge(photos, tiny_bundle, whole, tmp_path, capsys):
    parts = [tmp_path / f"p-{i}.csv" for i in range(2)]
    for i, part in enumerate(parts):
        assert main(["predict", str(tiny_bundle), str(photos), "--shard", f"{i}/2", "--out", str(part), "--progress", "log"]) == 0
    assert main(["merge-predictions", *map(str, parts), "--out", str(tmp_path / "all.csv")]) == 0
    merged = pd.read_csv(tmp_path / "all.csv")
    assert list(merged["path"]) == list(pd.read_csv(whole)["path"])
    # What a shell's `p-*` gives: each part with its _patients.csv and _shard.json, taken as that part's.
    everything = sorted(str(f) for f in tmp_path.glob("p-*"))
    assert any(f.endswith("_shard.json") for f in everything) and any(f.endswith("_patients.csv") for f in everything)
    assert main(["merge-predictions", *everything, "--out", str(tmp_path / "glob.csv")]) == 0
    assert pd.read_csv(tmp_path / "glob.csv").equals(merged)
    assert main(["predict", str(tiny_bundle), str(photos), "--shard", "2/2"]) == 2
    assert "--shard '2/2' must look like i/n" in capsys.readouterr().err


def test_an_empty_shard_writes_empty_files_the_merge_accepts(photos, tiny_bundle, tmp_path):
    one = photos.parent / "one"
    one.mkdir(exist_ok=True)
    shutil.copy(next(photos.glob("*_left.jpeg")), one / "5_left.jpeg")
    parts = [predict_command(tiny_bundle, [one], shard=(i, 2), out=tmp_path / f"e{i}.csv") for i in range(2)]
    sizes = sorted(len(pd.read_csv(p)) for p in parts)
    assert sizes == [0, 1]
    assert len(pd.read_csv(merge_predictions(parts, tmp_path / "e.csv"))) == 1


def test_predict_progress_follows_the_progress_mode(photos, tiny_bundle, tmp_path, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="drgrader"):
        assert main(["--progress", "log", "predict", str(tiny_bundle), str(photos / "deep"), "--out", str(tmp_path / "d.csv")]) == 0
    assert any(r.getMessage().startswith("predicting: ") for r in caplog.records)  # a plain line with counts
    assert "\r" not in capsys.readouterr().err  # no bar redraws
