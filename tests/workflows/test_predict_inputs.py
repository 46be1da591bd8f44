"""What ``predict`` is given, as people give it: a list with a damaged cell, photo names that are
not UTF-8, a list piped in (``<(...)``), a list written on Windows. Each is graded, or refused
in one line naming the file and row: never a traceback, never a batch blocked."""

from __future__ import annotations

import logging
import os

import pandas as pd
import pytest
from hostile.corpus import photo_bytes

from drgrader.cli import main
from drgrader.data.manifest import DataError
from drgrader.workflows.merge import merge_predictions
from drgrader.workflows.predict import predict_command


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k, name in enumerate(["10_left", "10_right"]):
        (folder / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k))
    return folder


def test_a_nul_byte_in_a_list_is_one_line_naming_the_row(tiny_bundle, photos, tmp_path, capsys):
    # Before: ValueError "embedded null byte" from outputs._resolved, a traceback.
    listing = tmp_path / "list.csv"
    listing.write_bytes(b"image\nphotos/10_left.jpeg\nphotos/10\x00_right.jpeg\n")
    assert main(["predict", str(tiny_bundle), str(listing), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {listing} row 2: a NUL byte in the 'image' cell (binary data, not a list of photos)"


def test_a_photo_name_that_is_not_utf8_is_graded_and_spelled_so_the_csvs_stay_utf8(tiny_bundle, photos, tmp_path, caplog):
    # Before: UnicodeEncodeError (surrogates not allowed) writing the partial file; nothing graded, ever.
    # Then: graded, but the CSVs held the raw byte 0xFC, and pandas or Excel could read none of their rows.
    latin1 = os.fsencode(photos) + b"/M\xfcller_left.jpeg"  # as an old Windows share leaves it
    with open(latin1, "wb") as fh:
        fh.write(photo_bytes(2, 7))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        written = predict_command(tiny_bundle, [photos], out=tmp_path / "p.csv")
    assert "1 photo name(s) are not UTF-8 (e.g. " in caplog.text
    rows = pd.read_csv(written, keep_default_na=False).set_index("image_id")  # UTF-8, as every reader expects
    assert rows.loc["M\\xfcller_left", "error"] == "" and len(rows) == 3  # graded, its byte spelled \xfc
    pd.read_csv(tmp_path / "p_patients.csv")
    again = pd.read_csv(predict_command(tiny_bundle, [written], out=tmp_path / "again.csv"), keep_default_na=False)
    assert (again["error"] == "").all()  # the output, given back as a list, finds the very file
    parts = [predict_command(tiny_bundle, [photos], shard=(i, 2), out=tmp_path / f"s-{i}.csv") for i in range(2)]
    assert len(pd.read_csv(merge_predictions(parts, tmp_path / "all.csv"))) == 3


def test_a_list_piped_in_is_read_as_a_list(tiny_bundle, photos, tmp_path, monkeypatch):
    # Before: `predict <(...)` (/dev/fd/63) was one photo: "broken symbolic link", patient 63.
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    os.write(write_end, b"image\nphotos/10_left.jpeg\nphotos/10_right.jpeg\n")
    os.close(write_end)
    try:
        rows = pd.read_csv(predict_command(tiny_bundle, [f"/dev/fd/{read_end}"], out=tmp_path / "p.csv"), keep_default_na=False)
    finally:
        os.close(read_end)
    assert list(rows["image_id"]) == ["photos/10_left", "photos/10_right"] and (rows["error"] == "").all()
    fifo = tmp_path / "list"
    os.mkfifo(fifo)  # nobody writing: refused at once, not a hang
    with pytest.raises(DataError, match="list cannot be read as CSV"):
        predict_command(tiny_bundle, [fifo], out=tmp_path / "q.csv")


def test_a_list_written_on_windows_finds_its_photos(tiny_bundle, photos, tmp_path, caplog):
    # Before: "file not found" rows for photos\10_left.jpeg, the patient ungradable.
    listing = tmp_path / "win.csv"
    listing.write_text("image\nphotos\\10_left.jpeg\nphotos\\10_right.jpeg\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "p.csv"), keep_default_na=False)
    assert (rows["error"] == "").all() and list(rows["eye"]) == ["left", "right"]
    assert caplog.text.count("written with backslashes (Windows) read with '/'") == 1


def test_a_windows_drive_or_share_path_is_said_to_be_elsewhere(tiny_bundle, photos, tmp_path, caplog):
    # A drive letter or a network share cannot be opened here: the rows stay "file not found", and one
    # warning says why, not a typo's "find the missing photo" alone.
    listing = tmp_path / "win.csv"
    listing.write_text("image\nC:\\clinic\\10_left.jpeg\n\\\\pacs\\share\\10_right.jpeg\nphotos\\10_left.jpeg\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "p.csv"), keep_default_na=False)
    assert list(rows["error"]).count("file not found") == 2
    assert "2 image path(s) name a Windows drive or network share (e.g. C:\\clinic\\10_left.jpeg)" in caplog.text
    assert "1 image path(s) written with backslashes (Windows) read with '/'" in caplog.text


def test_a_list_naming_photos_in_other_case_finds_them_with_a_warning(tiny_bundle, photos, tmp_path, caplog):
    # A list written on Windows or macOS (names matched without case): before, "file not found" rows.
    (photos / "10_right.jpeg").rename(photos / "10_Right.JPEG")
    listing = tmp_path / "list.csv"
    listing.write_text("image\nPHOTOS\\10_left.jpeg\nphotos/10_RIGHT\n")  # a Kaggle id without extension too
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "p.csv"), keep_default_na=False)
    assert (rows["error"] == "").all() and list(rows["eye"]) == ["left", "right"]
    assert "2 image path(s) found under a name that differs only in case (e.g. PHOTOS\\10_left.jpeg -> 10_left.jpeg)" in caplog.text
    (photos / "10_right.jpeg").write_bytes(photo_bytes(3, 3))  # two files that differ only in case: no guess
    rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "q.csv"), keep_default_na=False)
    assert list(rows["error"]).count("file not found") == 1


def test_a_list_saved_in_latin1_is_read_with_a_warning(tiny_bundle, photos, tmp_path, caplog):
    # Before (probe 26): Python's raw codec error, exit 2, while a Latin-1 label file was read with a warning.
    (photos / "Müller_left.jpeg").write_bytes(photo_bytes(2, 5))  # named in UTF-8, as Linux names it
    with open(os.fsencode(photos) + b"/J\xf6rg_right.jpeg", "wb") as fh:  # named in Latin-1, as an old share left it
        fh.write(photo_bytes(3, 6))
    listing = tmp_path / "list.csv"
    listing.write_bytes("image\nphotos/Müller_left.jpeg\nphotos/Jörg_right.jpeg\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "p.csv"), keep_default_na=False)
    assert f"{listing}: 2 line(s) are not valid UTF-8 (line 2, 3): read as Windows-1252 / Latin-1" in caplog.text
    assert (rows["error"] == "").all() and list(rows["image_id"]) == ["photos/Müller_left", "photos/J\\xf6rg_right"]
    # One Latin-1 line among UTF-8 ones: only it is read as Latin-1 (before, probe 27: the whole list, José -> JosÃ©).
    listing.write_bytes("image,patient_id\nphotos/10_left.jpeg,José\n".encode() + "photos/10_right.jpeg,José\n".encode("latin-1"))
    rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "q.csv"), keep_default_na=False)
    assert list(rows["patient_id"]) == ["José", "José"] and (rows["identity_note"] == "").all()
    # Excel's "ANSI" (Windows-1252: O’Brien) and a quoted cell over two lines before a legacy line (before,
    # probe 28: O\x92Brien, a second patient; the legacy line's Latin-1 file name "file not found").
    listing.write_bytes('image,patient_id,note\nphotos/10_left.jpeg,O’Brien,"two\nlines"\n'.encode()
                        + "photos/Jörg_right.jpeg,O’Brien,x\n".encode("cp1252"))
    rows = pd.read_csv(predict_command(tiny_bundle, [listing], out=tmp_path / "r.csv"), keep_default_na=False)
    assert list(rows["patient_id"]) == ["O’Brien", "O’Brien"] and (rows["error"] == "").all()


def test_listed_photos_not_found_are_warned_with_another_extension_named(tmp_path, caplog):
    # Probe 39 BC3: a list none of whose photos exist ran to exit 0 with an INFO line only.
    from drgrader.data.inputs import collect_inputs

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "IMG_A.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "l.csv").write_text("image,patient_id,eye\nsub/IMG_A.jpg,1,left\n/home/other/IMG_B.jpeg,1,right\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([tmp_path / "l.csv"])
    assert len(table) == 2
    assert (f"{tmp_path / 'l.csv'}: 2 of 2 listed photo(s) not found (e.g. sub/IMG_A.jpg; IMG_A.jpeg has another extension: "
            "list it so if it is that photo): their rows say 'file not found'") in caplog.messages
    # Probe 53 BQ7: a data set's label file (ids without extension, photos in images/ beside it) given to predict.
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "Patient002_L.jpg").write_bytes(photo_bytes(1, 2))
    (tmp_path / "labels.csv").write_text("image,level,patient_id,eye\nPatient002_L,0,Patient002,left\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([tmp_path / "labels.csv"])
    assert ("1 of 1 listed photo(s) not found (e.g. Patient002_L; images/Patient002_L.jpg is beside the list: a data set's "
            "label file? A list names each photo by its path from the list's folder") in caplog.text


def test_patient_cells_that_name_an_eye_are_warned_of(tmp_path, caplog):
    # Probe 41 BE5: '1001 OS' / '1001 OD' beside the eye column: two patients of one eye each, unpaired, silent.
    from drgrader.data.inputs import collect_inputs

    for k, name in enumerate(("a", "b")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k))
    (tmp_path / "l.csv").write_text("image,patient_id,eye\na.jpeg,1001 OS,left\nb.jpeg,1001 OD,right\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([tmp_path / "l.csv"])
    assert (f"{tmp_path / 'l.csv'}: 2 patient cell(s) name an eye too (e.g. '1001 OS'): each eye is read as a patient of "
            "its own and not paired") in caplog.text
