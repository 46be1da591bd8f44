"""No command overwrites what it did not make (drgrader.outputs): checked before any work."""

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from drgrader.cli import main
from drgrader.outputs import exclusive, fresh_name, kind_of, unique_names
from drgrader.synth import make_fundus


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, grade in enumerate((0, 2)):
        rgb = make_fundus(grade, np.random.default_rng(i), height=128)
        cv2.imwrite(str(folder / f"{i}_left.jpeg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return sorted(folder.glob("*.jpeg"))


def test_unique_names_fresh_names_and_kinds(tmp_path):
    assert unique_names(["10_left", "10_left", "10_left-2", "a"]) == ["10_left", "10_left-2", "10_left-2-2", "a"]
    (tmp_path / "predictions.csv").write_text("x")
    (tmp_path / "predictions-2.csv").write_text("x")
    assert fresh_name(tmp_path / "predictions.csv") == tmp_path / "predictions-3.csv"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text('{"task": "grade"}')
    assert kind_of(tmp_path / "b") == "a model bundle"
    (tmp_path / "b" / "bundle.json").write_text('{"resourceType": "Bundle"}')  # a FHIR export's: probe 38 CB1
    assert kind_of(tmp_path / "b") == "a folder"
    assert kind_of(tmp_path / "x.jpeg") is None


def test_predict_never_writes_onto_an_input(tiny_bundle, photos, tmp_path, capsys):
    before = digest(photos[1])
    assert main(["predict", str(tiny_bundle), *map(str, photos), "--out", str(photos[1])]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert digest(photos[1]) == before
    listing = tmp_path / "list.csv"
    listing.write_text("image\n" + "\n".join(str(p) for p in photos) + "\n")
    assert main(["predict", str(tiny_bundle), str(listing), "--out", str(listing)]) == 2
    assert listing.read_text().startswith("image\n")


def test_predict_onto_another_kind_of_file_or_a_folder_is_refused_up_front(tiny_bundle, photos, tmp_path, capsys):
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    assert main(["predict", str(tiny_bundle), str(photos[0]), "--out", str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err and other.read_text() == "mine"
    assert main(["predict", str(tiny_bundle), str(photos[0]), "--out", str(tmp_path)]) == 2
    assert main(["predict", str(tiny_bundle), str(photos[0]), "--batch-size", "0", "--out", str(tmp_path / "p.csv")]) == 2
    assert not list(tmp_path.glob("p.csv*"))  # nothing left behind


def test_predict_and_merge_never_replace_a_csv_of_the_users(tiny_bundle, photos, tmp_path, capsys):
    # Probe 30 F6: a CSV at --out (or at <out>_patients.csv) that drgrader did not write was
    # replaced without a word. Its own outputs are replaced as before; --overwrite replaces any.
    register = tmp_path / "register.csv"
    register.write_text("name,dob,phone\nJane Roe,1950-01-01,555\n")
    day_patients = tmp_path / "day_patients.csv"
    day_patients.write_text("patient_id,note\nP1,diabetic since 2001\n")
    photo = str(photos[0])
    assert main(["predict", str(tiny_bundle), photo, "--out", str(register)]) == 2
    assert (f"--out {register} exists and is not a predictions file drgrader wrote (columns name, dob, phone); "
            "choose another --out, or --overwrite") in capsys.readouterr().err
    assert main(["predict", str(tiny_bundle), photo, "--out", str(tmp_path / "day.csv")]) == 2
    assert f"would replace {day_patients}, which exists and is not a patients file drgrader wrote (columns patient_id, note)" \
        in capsys.readouterr().err
    assert main(["merge-predictions", photo, "--out", str(register), "--unverified"]) == 2
    assert "is not a predictions file drgrader wrote" in capsys.readouterr().err
    assert register.read_text().startswith("name,dob") and "diabetic" in day_patients.read_text()
    assert not (tmp_path / "day.csv").exists()
    own = tmp_path / "own.csv"
    for _ in range(2):  # its own output, and its own patients file, replaced by a rerun
        assert main(["predict", str(tiny_bundle), photo, "--out", str(own)]) == 0
    assert main(["predict", str(tiny_bundle), photo, "--out", str(register), "--overwrite"]) == 0
    assert register.read_text().startswith("path,")


def test_a_csv_sharing_a_few_column_names_with_predicts_is_still_the_users(tiny_bundle, photos, tmp_path, capsys):
    # Probe 31 L1: a reference-grades sheet (path, grade) at --out, and a log of signed decisions
    # (patient_id, decision) at <out>_patients.csv, were replaced: two shared names were taken
    # for drgrader's own file. Its header, as any drgrader version wrote it, is what counts.
    photo = str(photos[0])
    refgrades = tmp_path / "refgrades.csv"
    refgrades.write_text("path,grade,grader,date\na.jpeg,2,Dr Smith,2024-01-02\n")
    clin_patients = tmp_path / "clin_patients.csv"
    clin_patients.write_text("patient_id,decision,signed_by\n10131,routine,Dr Smith\n")
    assert main(["predict", str(tiny_bundle), photo, "--out", str(refgrades)]) == 2
    assert f"--out {refgrades} exists and is not a predictions file drgrader wrote (columns path, grade, grader, date)" \
        in capsys.readouterr().err
    assert main(["predict", str(tiny_bundle), photo, "--out", str(tmp_path / "clin.csv")]) == 2
    assert f"would replace {clin_patients}, which exists and is not a patients file drgrader wrote" in capsys.readouterr().err
    assert main(["merge-predictions", photo, "--out", str(refgrades), "--unverified"]) == 2
    assert "Dr Smith" in refgrades.read_text() and "Dr Smith" in clin_patients.read_text()
    assert not (tmp_path / "clin.csv").exists()
    # An older drgrader's files (no identity_note; no decision yet) are its own: replaced by a rerun.
    own = tmp_path / "own.csv"
    assert main(["predict", str(tiny_bundle), photo, "--out", str(own)]) == 0
    for file, dropped in ((own, ["identity_note"]), (tmp_path / "own_patients.csv", ["decision", "reason", "uncertainty",
                                                                                    "fused_grade", "identity_note"])):
        header = file.read_text().splitlines()[0].split(",")
        file.write_text(",".join(name for name in header if name not in dropped) + "\n")
    (tmp_path / ".own.csv.written.json").unlink()  # an older drgrader kept no record of what it wrote
    assert main(["predict", str(tiny_bundle), photo, "--out", str(own)]) == 0
    assert "identity_note" in own.read_text().splitlines()[0]
    # Probe 37 BA3: without the record nothing tells an edit from an older drgrader's file: a copy is kept.
    assert (tmp_path / "own.previous.csv").read_text().splitlines()[0].split(",")[-1] != "identity_note"
    assert (tmp_path / "own_patients.previous.csv").is_file()
    copied = tmp_path / "copied"
    copied.mkdir()
    for name in ("own.csv", "own_patients.csv"):  # `cp *.csv`: the hidden record left behind
        (copied / name).write_text((tmp_path / name).read_text())
    edited = (copied / "own.csv").read_text() + "a reviewer's line\n"
    (copied / "own.csv").write_text(edited)
    assert main(["predict", str(tiny_bundle), photo, "--out", str(copied / "own.csv")]) == 0
    assert (copied / "own.previous.csv").read_text() == edited


def test_drgraders_own_file_signed_with_a_column_of_the_users_is_the_users(tiny_bundle, photos, tmp_path, capsys):
    # Probe 32 A2: the patients file signed by adding a column (signed_by) was replaced by the next
    # predict onto the same --out: every column of drgrader's there was enough.
    import pandas as pd

    photo = str(photos[0])
    day = tmp_path / "day.csv"
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day)]) == 0
    patients = tmp_path / "day_patients.csv"
    pd.read_csv(patients, dtype=str).assign(signed_by="Dr Smith").to_csv(patients, index=False)
    signed = patients.read_bytes()
    assert main(["predict", str(tiny_bundle), str(photos[1]), "--out", str(day)]) == 2
    assert f"would replace {patients}, which exists and is not a patients file drgrader wrote" in capsys.readouterr().err
    assert patients.read_bytes() == signed
    pd.read_csv(day, dtype=str).assign(checked="yes").to_csv(day, index=False)  # the same for the predictions file
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day)]) == 2
    assert f"--out {day} exists and is not a predictions file drgrader wrote" in capsys.readouterr().err
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day), "--overwrite"]) == 0  # asked: replaced
    assert "signed_by" not in patients.read_text()


def test_drgraders_own_file_edited_in_place_is_the_users(tiny_bundle, photos, tmp_path, capsys):
    # Probe 35 AY10: a patients file whose decision a clinician overrode (every column kept), or a
    # predictions file with a grade corrected, was replaced without a word by the same command run
    # again: only the header was checked. Now a record of what drgrader wrote is compared.
    import pandas as pd

    photo = str(photos[0])
    day = tmp_path / "day.csv"
    patients = tmp_path / "day_patients.csv"
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day)]) == 0
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day)]) == 0  # untouched: a rerun replaces it
    table = pd.read_csv(patients, dtype=str, keep_default_na=False)
    table.loc[0, "decision"] = "refer (overridden by Dr X)"
    table.to_csv(patients, index=False)
    reviewed = patients.read_bytes()
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day)]) == 2
    assert (f"would replace {patients}, which exists and was changed since drgrader wrote it (edited by hand or in a "
            "spreadsheet?)") in capsys.readouterr().err
    assert patients.read_bytes() == reviewed
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day), "--overwrite"]) == 0  # asked: replaced
    assert "overridden" not in patients.read_text()
    day.write_text(day.read_text().replace(photo, photo + " (checked)"))  # the predictions file edited alike
    assert main(["predict", str(tiny_bundle), photo, "--out", str(day)]) == 2
    assert f"--out {day} exists and was changed since drgrader wrote it" in capsys.readouterr().err
    merged = tmp_path / "merged.csv"  # merge-predictions' --out is guarded alike
    assert main(["merge-predictions", str(day), "--out", str(merged), "--unverified"]) == 0
    merged.write_text(merged.read_text().replace("(checked)", "(checked twice)"))
    assert main(["merge-predictions", str(day), "--out", str(merged), "--unverified"]) == 2
    assert f"--out {merged} exists and was changed since drgrader wrote it" in capsys.readouterr().err
    assert "checked twice" in merged.read_text()


def test_default_output_gets_a_fresh_name(tiny_bundle, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(tiny_bundle), str(photos[0])]) == 0
    first = digest(tmp_path / "predictions.csv")
    assert main(["predict", str(tiny_bundle), str(photos[1])]) == 0
    assert digest(tmp_path / "predictions.csv") == first and (tmp_path / "predictions-2.csv").is_file()


def test_a_second_run_on_the_same_output_is_refused_at_once(tiny_bundle, photos, tmp_path, capsys):
    out = tmp_path / "p.csv"
    with exclusive(out):  # as a first `drgrader predict` still running would hold it
        assert main(["predict", str(tiny_bundle), *map(str, photos), "--out", str(out)]) == 2
    assert "another drgrader command is writing" in capsys.readouterr().err
    assert main(["predict", str(tiny_bundle), *map(str, photos), "--out", str(out)]) == 0  # free again


def test_export_onto_another_bundle_is_refused(tiny_bundle, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    weights = digest(other / "model.safetensors")
    assert main(["export", str(tiny_bundle), "--out", str(other)]) == 2
    assert "is a model bundle" in capsys.readouterr().err
    assert digest(other / "model.safetensors") == weights and not (other / "model.onnx").exists()


def test_export_overwrite_never_replaces_a_runs_own_bundle(tiny_bundle, tmp_path, capsys):
    # Probe 38 CB10: another run's model put into a run, whose report and metrics describe its own.
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    (run / "checkpoints").mkdir()
    weights = digest(run / "bundle" / "model.safetensors")
    assert main(["export", str(tiny_bundle), "--out", str(run / "bundle"), "--overwrite"]) == 2
    assert f"is the bundle of a run folder ({run}), which --overwrite never replaces" in capsys.readouterr().err
    assert digest(run / "bundle" / "model.safetensors") == weights and not (run / "bundle" / "model.onnx").exists()


def test_evaluate_overwrite_leaves_nothing_of_an_earlier_ensembles_evaluation(tiny_bundle, other_tiny_bundle, synth_dir,
                                                                              tmp_path):
    # Probe 38 CB11: its members' predictions stayed beside the new evaluation's.
    ensemble, out = tmp_path / "ens", tmp_path / "ev"
    assert main(["ensemble", str(tiny_bundle), str(other_tiny_bundle), "--out", str(ensemble)]) == 0
    assert main(["evaluate", str(ensemble), "--data", str(synth_dir), "--out", str(out)]) == 0
    assert len(list((out / "members").iterdir())) == 2
    single = shutil.copytree(tiny_bundle, tmp_path / "single")  # evaluate adds to its model card
    assert main(["evaluate", str(single), "--data", str(synth_dir), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "members").exists() and (out / "predictions_test.csv").is_file()


def test_evaluate_overwrite_never_replaces_a_users_own_metrics_json(tiny_bundle, synth_dir, tmp_path, capsys):
    # Probe 39 CC3: any folder holding a metrics.json was "an evaluation folder", replaced with --overwrite.
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"acc": 0.9}')
    (mine / "paper.tex").write_text("draft")
    assert main(["evaluate", str(tiny_bundle), "--data", str(synth_dir), "--out", str(mine), "--overwrite"]) == 2
    assert "is a folder of other files" in capsys.readouterr().err
    assert (mine / "metrics.json").read_text() == '{"acc": 0.9}'


def test_evaluate_onto_the_run_itself_is_refused(tiny_bundle, synth_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    (run / "metrics.json").write_text('{"training": {}}')
    assert main(["evaluate", str(run), "--data", str(synth_dir), "--out", str(run)]) == 2
    assert "is a run folder" in capsys.readouterr().err
    assert (run / "metrics.json").read_text() == '{"training": {}}'


def test_explain_gives_repeated_stems_their_own_files(tiny_bundle, photos, tmp_path):
    for clinic in ("clinicA", "clinicB"):
        (tmp_path / clinic).mkdir()
        shutil.copy(photos[0], tmp_path / clinic / "10_left.jpeg")
    out = tmp_path / "explain"
    assert main(["explain", str(tiny_bundle), str(tmp_path / "clinicA"), str(tmp_path / "clinicB"), "--out", str(out)]) == 0
    # Each file its own image id (clinicA/10_left, clinicB/10_left), so each heat map names its folder.
    assert sorted(p.name for p in out.glob("*.png")) == ["clinicA_10_left_gradcam.png", "clinicB_10_left_gradcam.png"]


def test_explain_gives_a_photo_with_a_long_name_a_heat_map_and_goes_on(tiny_bundle, photos, tmp_path):
    # Probe 30 W4: a 250-character photo name made a heat-map name over 255 bytes: exit 2 naming a
    # hidden temporary file, the photos after it not explained. Its name is cut, kept unique.
    folder = tmp_path / "long"
    folder.mkdir()
    long_names = ["P" * 240 + f"{n}_left.jpeg" for n in (1, 2)]  # cut alike, told apart by the digest
    for name in [*long_names, "z7_left.jpeg"]:
        shutil.copy(photos[0], folder / name)
    out = tmp_path / "explain"
    assert main(["explain", str(tiny_bundle), str(folder), "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 3 and "z7_left_gradcam.png" in written, written
    assert all(len(name.encode()) <= 240 and name.endswith("_gradcam.png") for name in written)
    assert sum(name.startswith("P" * 200) for name in written) == 2


def test_special_files_in_a_folder_are_rows_with_their_reason_not_a_hang(tiny_bundle, photos, tmp_path):
    import os

    import pandas as pd

    folder = photos[0].parent
    os.mkfifo(folder / "9_left.jpeg")
    (folder / "8_left.jpeg").symlink_to(folder / "missing.jpeg")
    (folder / "7_left.jpeg").symlink_to(folder / "7_left.jpeg")
    (folder / "cut.gif").write_bytes(b"GIF89a")  # a photo format since DICOM/GIF/WebP support: a row
    (folder / "notes.txt").write_text("not a photo")  # counted in a warning, not a row
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_bundle), str(folder), "--out", str(out)]) == 0  # returns: no blocking read
    rows = pd.read_csv(out, keep_default_na=False).set_index("image_id")
    assert rows.loc["9_left", "error"] == "not a regular file (FIFO, socket or device)"
    assert rows.loc["8_left", "error"] == "broken symbolic link"
    assert rows.loc["7_left", "error"] == "symbolic link loop"
    assert rows.loc["cut", "error"] != ""
    assert rows.loc["0_left", "error"] == "" and len(rows) == 6


@pytest.mark.parametrize("name", ["grades.tsv", "grades.xlsx", "grades.JSON", "grades.csv.gz", "grades.csv.zip", "-",
                                  "grades", "grades.txt", "grades.CSV", "grades.csv "])
def test_an_output_named_for_another_table_format_is_refused(tiny_bundle, photos, tmp_path, capsys, name):
    # predict writes commas: a spreadsheet opening grades.tsv as tab-separated shows one column.
    # Probe 32 A14: grades.csv.gz was plain text under a gzip name; '-' wrote a file named '-'.
    out = name if name == "-" else str(tmp_path / name)
    assert main(["predict", str(tiny_bundle), str(photos[0]), "--out", out]) == 2
    # Probe 33 AV3: 'grades', 'grades.txt', 'grades.CSV' wrote grades_patients.csv, grades.csv's patients file.
    said = capsys.readouterr().err
    expected = ("not to standard output" if name == "-" else "give a name ending in .csv (e.g. "
                if name in ("grades", "grades.txt", "grades.CSV", "grades.csv ") else "plain comma-separated values")
    assert expected in said, said
    assert not list(tmp_path.glob("grades*")) and not Path("-").exists()


def test_a_file_written_beside_out_never_replaces_an_input(tiny_bundle, photos, tmp_path, capsys):
    # A day's list named day_patients.csv: predict --out day.csv would write its patients file onto it.
    listing = tmp_path / "day_patients.csv"
    listing.write_text("image\n" + "\n".join(str(p) for p in photos) + "\n")
    before = digest(listing)
    assert main(["predict", str(tiny_bundle), str(listing), "--out", str(tmp_path / "day.csv")]) == 2
    assert "--out" in (err := capsys.readouterr().err) and f"would write its patients file onto the input {listing}" in err
    assert digest(listing) == before and not (tmp_path / "day.csv").exists()
    resume = tmp_path / "x.csv.partial.csv"  # a list under the name of another's resume file
    resume.write_text(listing.read_text())
    assert main(["predict", str(tiny_bundle), str(resume), "--out", str(tmp_path / "x.csv")]) == 2
    assert "would write its resume file onto the input" in capsys.readouterr().err and resume.read_text().startswith("image")


def test_merge_never_writes_its_patients_file_onto_a_part(tiny_bundle, photos, tmp_path, capsys):
    from drgrader.workflows.predict import predict_command

    part = predict_command(tiny_bundle, [photos[0]], out=tmp_path / "m_patients.csv")  # a part under that name
    before = digest(part)
    assert main(["merge-predictions", str(part), "--unverified", "--out", str(tmp_path / "m.csv")]) == 2
    assert "would write its patients file onto the input" in capsys.readouterr().err
    assert digest(part) == before and not (tmp_path / "m.csv").exists()


def test_a_folder_where_a_file_beside_out_goes_is_refused_before_the_work(tiny_bundle, photos, tmp_path, capsys):
    # Probe 33 AV10: `x_patients.csv` a folder: a raw OSError after the work, x.csv and the resume files left.
    (tmp_path / "x_patients.csv").mkdir()
    assert main(["predict", str(tiny_bundle), str(photos[0]), "--out", str(tmp_path / "x.csv")]) == 2
    assert "would write its patients file x_patients.csv, which is a folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.csv*")) and not list((tmp_path / "x_patients.csv").iterdir())


def test_a_quoted_home_folder_in_out_is_the_home_folder(tiny_bundle, photos, tmp_path, monkeypatch):
    # Probe 38 BB8: "~/o.csv" (quoted, or from a script) made a folder named "~" for the resume
    # file, which pandas then read from the home folder: the graded photos lost at the end.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(tiny_bundle), str(photos[0].parent), "--out", "~/o.csv"]) == 0
    assert (home / "o.csv").is_file() and not (tmp_path / "~").exists()
