"""What a spreadsheet does to drgrader's CSVs, both ways (probe 38 BB10): cells it would run as
formulas are written as text, a list's rows as Excel and `cat` leave them are read or refused
by name, and clinic folders named `Left Eye/` are taken as what they are."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from drgrader.data.inputs import collect_inputs
from drgrader.data.manifest import DataError
from drgrader.outputs import read_back, table_csv
from drgrader.workflows.merge import merge_predictions
from drgrader.workflows.predict import predict_command

from .corpus import photo_bytes

FORMULAS = ["=1+1", '=HYPERLINK("http://x.example","open")', "@SUM(A1)", "+44 20 7946", "-2+3", "'quoted"]


def test_a_cell_a_spreadsheet_would_run_is_written_as_text_and_read_back_as_it_was():
    table = pd.DataFrame({"patient_id": [*FORMULAS, "-7", "1e5", "P1"], "p": [0.5] * 9})
    text = table_csv(table)
    assert text.splitlines()[1:7] == ["'=1+1,0.5", "\"'=HYPERLINK(\"\"http://x.example\"\",\"\"open\"\")\",0.5", "'@SUM(A1),0.5",
                                      "'+44 20 7946,0.5", "'-2+3,0.5", "''quoted,0.5"]
    assert text.splitlines()[7:] == ["-7,0.5", "1e5,0.5", "P1,0.5"]  # numbers and plain ids as they are
    back = read_back(pd.read_csv(__import__("io").StringIO(text), dtype={"patient_id": str}))
    pd.testing.assert_frame_equal(back, table)


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    root = tmp_path_factory.mktemp("cells")
    rows = ["image,patient_id,eye"]
    for k, patient in enumerate(FORMULAS):
        for j, eye in enumerate(("left", "right")):
            (root / f"{k}_{eye}.jpeg").write_bytes(photo_bytes((k + j) % 5, 10 * k + j))
            quoted = '"' + patient.replace('"', '""') + '"'
            rows.append(f"{k}_{eye}.jpeg,{quoted},{eye}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root


def test_patient_ids_that_look_like_formulas_are_text_in_both_csvs_and_merge_unchanged(listed, tiny_bundle, tmp_path):
    out = predict_command(tiny_bundle, [listed / "list.csv"], out=tmp_path / "p.csv")
    patients_text = (tmp_path / "p_patients.csv").read_text()
    assert "\n'=1+1," in patients_text and "\n'@SUM(A1)," in patients_text and "\n=1+1" not in patients_text
    assert read_back(pd.read_csv(tmp_path / "p_patients.csv", dtype=str))["patient_id"].tolist() == sorted(FORMULAS)
    photos = read_back(pd.read_csv(out, dtype=str, keep_default_na=False))
    assert photos["patient_id"].tolist() == [p for p in FORMULAS for _ in range(2)]
    # The shards' parts are read back before they are merged: no apostrophe added twice.
    parts = [predict_command(tiny_bundle, [listed / "list.csv"], shard=(i, 2), out=tmp_path / f"s-{i}.csv") for i in range(2)]
    merged = merge_predictions(parts, tmp_path / "m.csv")
    def ids(file):  # the patient cells as written (the scores may differ in the last digits by batch)
        return pd.read_csv(file, dtype=str, keep_default_na=False)["patient_id"].tolist()

    assert ids(tmp_path / "m_patients.csv") == ids(tmp_path / "p_patients.csv") and ids(merged) == ids(out)
    assert "'=1+1" in ids(merged) and "''quoted" in ids(merged)


def test_a_list_with_a_trailing_comma_is_read_without_a_data_loss_warning(tmp_path, caplog):
    (tmp_path / "1001_left.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "l.csv").write_text("image,patient_id,eye\n1001_left.jpeg,P1,left,\n")
    with caplog.at_level(logging.WARNING):
        table = collect_inputs([tmp_path / "l.csv"])
    assert table["patient_id"].tolist() == ["P1"] and table["eye"].tolist() == ["left"]
    assert not [r for r in caplog.records if "loss of data" in r.getMessage()]


def test_two_lists_joined_with_their_headers_are_refused_naming_the_repeated_header(tmp_path):
    for name in ("1_left", "2_left"):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(1, len(name)))
    (tmp_path / "all.csv").write_text("image,eye\n1_left.jpeg,left\nimage,eye\n2_left.jpeg,left\n")
    with pytest.raises(DataError, match=r"all.csv row 2 repeats the header \(image, eye\): two files joined\?"):
        collect_inputs([tmp_path / "all.csv"])


def test_a_patient_cell_with_a_line_break_is_refused(tmp_path):
    (tmp_path / "1_left.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "l.csv").write_text('image,patient_id\n1_left.jpeg,"Line1\nLine2"\n')
    with pytest.raises(DataError, match=r"l.csv row 1 \(image '1_left.jpeg'\): patient 'Line1\\nLine2' holds a line break"):
        collect_inputs([tmp_path / "l.csv"])


def test_folders_named_left_eye_and_right_eye_say_nothing_of_two_folders(tmp_path):
    for k, (folder, eye) in enumerate((("Left Eye", "left"), ("Right Eye", "right"))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"1001_{eye}.jpeg").write_bytes(photo_bytes(k + 1, k))
    table = collect_inputs([tmp_path])
    assert table["patient_id"].tolist() == ["1001", "1001"] and table["identity_note"].tolist() == ["", ""]
