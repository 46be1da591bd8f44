"""Grade folders (``data.format: folders``) whose names would give their photos another grade than
the one they say: a word against its number (probe 58 CV6), a grade folder inside another (CV7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drgrader.cli import main
from drgrader.data.manifest import DataError, read_dataset


def folders(root: Path, photos: list[str]) -> Path:
    """Placeholder photos (the reader does not read pixels) at their paths under ``root``."""
    for name in photos:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    return root


def test_grade_folders_whose_words_name_other_grades_than_their_numbers_are_refused(tmp_path, capsys):
    # Probe 58 CV6: a 4-class scheme's folders were read by their numbers: every "Moderate" eye grade 1
    # (not referable), every "PDR" eye grade 3, and nothing said.
    root = folders(tmp_path / "four", ["0 No DR/10_left.jpeg", "1 Moderate/10_right.jpeg", "2 Severe/11_left.jpeg",
                                       "3 PDR/11_right.jpeg"])
    with pytest.raises(DataError, match=r"^\S*four: grade folder '1 Moderate': its number says grade 1 \(mild\), its word "
                                        r"says moderate \(2\) \(so do '2 Severe', '3 PDR'\); the folders are read by .*"
                                        r"rename the folders by their ICDR grade \(0 none, 1 mild, 2 moderate, 3 severe "
                                        r"NPDR, 4 proliferative\)$"):
        read_dataset(root, "folders")
    assert main(["data", "summary", "demo", "--set", f"data.root={root}", "--set", "data.format=folders"]) == 2
    err = capsys.readouterr().err
    assert "grade folder '1 Moderate': its number says grade 1 (mild)" in err and err.count("\n") == 1
    # counted from 1, and an annotation tool's "1 - moderate" beside a plain 0
    one_based = folders(tmp_path / "one", ["1 No_DR/a.jpeg", "2 Mild/b.jpeg", "3 Moderate/c.jpeg"])
    with pytest.raises(DataError, match=r"'1 No_DR': its number says grade 1 \(mild\), its word says none \(0\) "
                                        r"\(so do '2 Mild', '3 Moderate'\)"):
        read_dataset(one_based, "folders")
    dashed = folders(tmp_path / "dash", ["0/a.jpeg", "1 - moderate/b.jpeg"])
    with pytest.raises(DataError, match=r"'1 - moderate': its number says grade 1 \(mild\), its word says moderate \(2\);"):
        read_dataset(dashed, "folders")


def test_grade_folders_whose_words_agree_or_name_no_one_grade_are_read(tmp_path):
    names = ["0 No DR", "1 mild NPDR", "2_Moderate_non-proliferative", "3 Severe", "4 PDR"]
    root = folders(tmp_path / "icdr", [f"{name}/{n}_left.jpeg" for n, name in enumerate(names)])
    assert list(read_dataset(root, "folders").sort_values("grade")["grade"]) == [0, 1, 2, 3, 4]
    # "NPDR" or "non-proliferative" alone is 1 to 3, and "severe PDR" names two grades: not judged
    root = folders(tmp_path / "vague", ["2 NPDR/a.jpeg", "3 non-proliferative/b.jpeg", "4 severe PDR/c.jpeg",
                                        "1 clinic B/d.jpeg"])
    assert list(read_dataset(root, "folders").sort_values("grade")["grade"]) == [1, 2, 3, 4]


def test_a_grade_folder_inside_another_is_refused_naming_it_and_the_grade_its_photos_would_get(tmp_path, capsys):
    # Probe 58 CV7: 0/2/ (a grade folder dragged into another) gave its photos grade 0 without a word.
    root = folders(tmp_path / "n", ["0/10007_left.jpeg", "0/2/10009_left.jpeg", "0/2/10009_right.jpeg",
                                    "1/10013_left.jpeg"])
    with pytest.raises(DataError, match=r"^\S*n: 0/2/: a grade folder inside grade folder '0'; its 2 photos would be read "
                                        r"as grade 0 \(none\), not 2 \(moderate\); move it beside the other grade "
                                        r"folders, or rename it if its number is no grade \(e.g. 'batch 2'\)$"):
        read_dataset(root, "folders")
    assert main(["data", "summary", "demo", "--set", f"data.root={root}", "--set", "data.format=folders"]) == 2
    assert "0/2/: a grade folder inside grade folder '0'" in capsys.readouterr().err
    worded = folders(tmp_path / "w", ["0/a.jpeg", "1/b.jpeg", "1/4 proliferative/c.jpeg"])
    with pytest.raises(DataError, match=r"1/4 proliferative/: a grade folder inside grade folder '1'; its 1 photos would "
                                        r"be read as grade 1 \(mild\), not 4 \(proliferative\)"):
        read_dataset(worded, "folders")


def test_sub_folders_numbered_otherwise_inside_grade_folders_are_read(tmp_path):
    # clinics, years, patients numbered beyond the grades, batches numbered alike in every grade folder,
    # and a grade folder's own number inside it: their photos take the grade folder's grade, as before
    layouts = {"clinics": ["0/clinicB/10_left.jpeg", "2/2 clinicB/10_right.jpeg"],
               "years": ["0/2019/10_left.jpeg", "2/2020/10_right.jpeg"],
               "patients": ["0/1/OD.jpeg", "0/17/OD.jpeg", "2/3/OS.jpeg"],
               "batches": ["0/1/10_left.jpeg", "0/2/11_left.jpeg", "2/1/10_right.jpeg", "2/2/11_right.jpeg"],
               "cameras": ["0/1/10_left.jpeg", "0/2/11_left.jpeg", "3/1/10_right.jpeg", "3/2/11_right.jpeg"],
               "same": ["2/2/10_left.jpeg", "2/2 moderate/10_right.jpeg", "0/11_left.jpeg"]}
    for name, photos in layouts.items():
        table = read_dataset(folders(tmp_path / name, photos), "folders")
        assert dict(zip(table["path"].map(lambda p: Path(p).relative_to(tmp_path / name).as_posix()), table["grade"])) == {
            photo: int(photo[0]) for photo in photos}, name
