"""Patient and eye from common file-name patterns."""

import pytest

from drgrader.data.eyes import eye_of_folder, eyes_named, patient_and_eye


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("10_left", ("10", "left")),
        ("10_RIGHT", ("10", "right")),
        ("Patient001_L", ("Patient001", "left")),
        ("Patient001_r", ("Patient001", "right")),
        ("Patient001_OD", ("Patient001", "right")),
        ("patient001_os", ("patient001", "left")),
        ("P-17-left", ("P-17", "left")),
        ("P-17-OS", ("P-17", "left")),
        ("anna k OD", ("anna k", "right")),
        ("a_b__R", ("a_b", "right")),
        ("images/21_left", ("21", "left")),
        ("clinic\\7_L", ("7", "left")),
        ("10_OS_left", ("10", "left")),  # the eye said twice: one patient, not '10_OS'
        ("10_left_OS", ("10", "left")),
        ("P7-R-right", ("P7", "right")),
        ("P7_OD_OS", ("P7_OD", "left")),  # two eyes: identity.py reads neither (eyes_named)
        ("10131_left (1)", ("10131", "left")),  # a browser's, Windows' or macOS's copy of 10131_left
        ("10131_right - Copy", ("10131", "right")),
        ("10131_right - Copy (2)", ("10131", "right")),
        ("P7_OS copy 2", ("P7", "left")),
        ("5_left_2", ("5", "left")),  # probe 32 A13: a second photo (field) of the eye, not patient '5_left_2'
        ("6_left_macula", ("6", "left")),
        ("6_OD-disc", ("6", "right")),
        ("7_right_f2 (1)", ("7", "right")),
        ("10193_OG", ("10193", "left")),  # probe 58 BV2: French oeil gauche, Portuguese, Spanish, English notes
        ("10193_OE", ("10193", "left")),
        ("10193_oi", ("10193", "left")),
        ("10193_LT", ("10193", "left")),
        ("10193_Rt", ("10193", "right")),
        ("10606_derecho", ("10606", "right")),
        ("10606_izquierdo", ("10606", "left")),
        ("5001_rechts", ("5001", "right")),
        ("10193left", ("10193", "left")),  # glued to the number
        ("10193Right", ("10193", "right")),
        ("10193_OG_2", ("10193", "left")),
        ("山田_左", ("山田", "left")),  # probe 59 BW1: other languages' and scripts' words
        ("张三_左眼", ("张三", "left")),
        ("张三左眼", ("张三", "left")),  # not spaced, as Chinese and Japanese are written
        ("10193右", ("10193", "right")),
        ("10193_右目", ("10193", "right")),
        ("10193_오른쪽", ("10193", "right")),
        ("10193_\u110b\u1169\u1105\u1173\u11ab\u110d\u1169\u11a8", ("10193", "right")),  # 오른쪽 as macOS writes it (NFD)
        ("10193_левый", ("10193", "left")),
        ("10193_Правый", ("10193", "right")),
        ("10193_ΑΡΙΣΤΕΡΟΣ", ("10193", "left")),
        ("10193_δεξί", ("10193", "right")),
        ("10193_venstre", ("10193", "left")),
        ("10193_Höger", ("10193", "right")),
        ("10193_va\u0308nster", ("10193", "left")),  # vänster decomposed
        ("10193_lewe", ("10193", "left")),
        ("10193_oikea", ("10193", "right")),
        ("10193_يسار", ("10193", "left")),
        ("10193_ימין", ("10193", "right")),
        ("10193_linkes_Auge", ("10193", "left")),
        ("10193_left_eye", ("10193", "left")),
        ("10193_O.D.", ("10193", "right")),
        ("10193 O.S", ("10193", "left")),
        ("10193_sol", None),  # left out: also common words, names or abbreviations
        ("10193_der", None),
        ("10193_dx", None),
        ("Anna_Kiri", None),
        ("左", None),  # the eye alone: its folder names the patient
        ("10193_LA", None),  # left out: also a place or initials
        ("10193L", None),
        ("P_R_17", None),  # after a one-letter eye, a number is not taken for a second photo
        ("10_left_scan", None),
        ("10_left (draft)", None),  # only a copy's own suffix is taken off
        ("eyeA", None),
        ("IDRiD_001", None),
        ("12_l1", None),
        ("left", None),
        ("_left", None),
        ("colour", None),
        ("scan_LR", None),
        ("P1_odd", None),
        ("", None),
    ],
)
def test_patient_and_eye_from_name(name, expected):
    assert patient_and_eye(name) == expected


@pytest.mark.parametrize(
    ("name", "eyes"),
    [("左眼", {"left"}), ("1001/左眼", {"left"}), ("Левый", {"left"}), ("venstre", {"left"}), ("10193_O.S._right", {"left", "right"}),
     ("山田_左_右", {"left", "right"}), ("10193_sol", set())],
)
def test_eyes_named_in_other_scripts(name, eyes):
    """Probe 59 BW1: the eye alone (a patient-per-folder export's name), and two eyes in one name."""
    assert eyes_named(name) == eyes


@pytest.mark.parametrize(("name", "eye"), [("右眼", "right"), ("Правый", "right"), ("Vänster", "left"), ("Links", "left"), ("der", None)])
def test_eye_of_folder_in_other_scripts(name, eye):
    assert eye_of_folder(name) == eye
