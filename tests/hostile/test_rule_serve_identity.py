"""Rule 2 of issue 22 in the web demo: the photos sent as ``right`` and ``left`` are one
patient's eyes, so photos that say otherwise are refused (400, both named), never graded as one
patient: names or DICOM ``PatientID``s of two patients (one ``PatientID`` on photos named for two
patients too, as predict's resolver pairs neither), a DICOM laterality against its field. A
DICOM file is known by its content whatever its name (``scan.jpg``)."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
from dicom_files import write_dicom

from drgrader.synth import make_fundus


def fundus(grade: int, seed: int) -> np.ndarray:
    return make_fundus(grade, np.random.default_rng(seed), height=128)


def jpeg(grade: int, seed: int) -> bytes:
    ok, data = cv2.imencode(".jpeg", cv2.cvtColor(fundus(grade, seed), cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.fixture
def dicom(tmp_path):
    """DICOM bytes of a photo with the given PatientID and laterality (tag ``tag``)."""
    def make(seed: int, *, patient_id: str = "", laterality: str = "", tag: str = "ImageLaterality") -> bytes:
        path = write_dicom(tmp_path / f"{seed}.dcm", fundus(2, seed), patient_id=patient_id,
                           laterality=laterality, laterality_tag=tag)
        return path.read_bytes()
    return make


def post(client, right: tuple[str, bytes], left: tuple[str, bytes]):
    return client.post("/api/predict", files={"right": (*right, "image/jpeg"), "left": (*left, "image/jpeg")})


@pytest.mark.parametrize(("right", "left"), [("10131_right.jpeg", "10007_left.jpeg"), ("Patient002_R.jpg", "Patient014_L.jpg")])
def test_two_patients_by_their_names_are_refused_naming_both(client, right, left):
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert error.startswith("the 'right' and 'left' photos are of two patients (") and "send the two eyes of one patient" in error
    for name in (right, left):
        patient = name.split("_")[0]
        assert f"{name}: patient '{patient}' by its name" in error


def test_two_patients_by_dicom_patient_id_or_against_a_name_are_refused(client, dicom):
    res = post(client, ("A_R.dcm", dicom(1, patient_id="A", laterality="R")), ("B_L.dcm", dicom(2, patient_id="B", laterality="L")))
    assert res.status_code == 400, res.text
    assert ("(A_R.dcm: patient 'A' by its DICOM PatientID; B_L.dcm: patient 'B' by its DICOM PatientID)"
            in res.json()["error"])
    # The header outranks the name, as in predict: PatientID 'A' in a file named like patient 10007's eye.
    res = post(client, ("10007_right.dcm", dicom(3, patient_id="A")), ("10007_left.jpeg", jpeg(0, 2)))
    assert res.status_code == 400, res.text
    assert "10007_right.dcm: patient 'A' by its DICOM PatientID; 10007_left.jpeg: patient '10007' by its name" in res.json()["error"]


def test_one_patient_and_names_without_a_patient_are_graded(client, dicom):
    pairs = [
        (("P7_right.jpeg", jpeg(2, 1)), ("P7_left.jpeg", jpeg(0, 2))),
        (("upload.jpg", jpeg(2, 1)), ("10007_left.jpeg", jpeg(0, 2))),  # no patient in a name
        (("photo1.png", jpeg(2, 1)), ("photo2.png", jpeg(0, 2))),
        (("scan.dcm", dicom(4, patient_id="P7 ", laterality="R")), ("P7_OS.jpeg", jpeg(0, 2))),
        (("scan.dcm", dicom(5)), ("10007_left.jpeg", jpeg(0, 2))),  # a DICOM file without PatientID
        (("Baseline_R.jpg", jpeg(2, 1)), ("1001_left.jpg", jpeg(0, 2))),  # a visit's word, no patient: probe 50 BN7
    ]
    for right, left in pairs:
        res = post(client, right, left)
        assert res.status_code == 200, (right[0], left[0], res.text)
        assert res.json()["patient"]["eyes"] == ["right", "left"]


@pytest.mark.parametrize("tag", ["ImageLaterality", "Laterality"])
def test_a_dicom_laterality_against_its_field_is_refused_as_a_name_is(client, dicom, tag):
    """Either tag, named as predict's notes name it (one tag: 'DICOM laterality')."""
    res = client.post("/api/predict", files={"left": ("scan001.dcm", dicom(6, laterality="R", tag=tag), "application/dicom")})
    assert res.status_code == 400, res.text
    assert res.json()["error"] == "left eye: scan001.dcm: its DICOM laterality says the right eye; send it as 'right'"
    res = client.post("/api/predict", files={"right": ("scan002.dcm", dicom(7, laterality="L", tag=tag), "application/dicom"),
                                             "left": ("other.jpeg", jpeg(0, 2), "image/jpeg")})
    assert res.status_code == 400 and res.json()["error"].startswith("right eye: scan002.dcm: its DICOM laterality says the left eye")
    # Its own field, or 'file' (side unknown): graded.
    assert client.post("/api/predict", files={"right": ("scan001.dcm", dicom(6, laterality="R", tag=tag))}).status_code == 200
    assert client.post("/api/predict", files={"file": ("scan001.dcm", dicom(6, laterality="R", tag=tag))}).status_code == 200


@pytest.mark.parametrize(("value", "eye", "other"), [("OS", "left", "right"), ("LEFT", "left", "right"), ("OD", "right", "left")])
def test_a_dicom_laterality_spelt_as_a_word_is_the_eye(client, dicom, value, eye, other):
    """Probe 59 BW5: ImageLaterality OS (not the standard L) sent as 'right' was graded as the right eye."""
    res = client.post("/api/predict", files={other: ("IM1.dcm", dicom(11, laterality=value), "application/dicom")})
    assert res.status_code == 400, res.text
    assert res.json()["error"] == f"{other} eye: IM1.dcm: its DICOM laterality says the {eye} eye; send it as '{eye}'"
    assert client.post("/api/predict", files={eye: ("IM1.dcm", dicom(11, laterality=value))}).status_code == 200


def test_a_dicom_whose_name_and_laterality_disagree_is_refused_in_either_field(client, dicom):
    data = dicom(8, laterality="R")  # named for the left eye
    for field in ("left", "right"):
        res = client.post("/api/predict", files={field: ("P5_left.dcm", data, "application/dicom")})
        assert res.status_code == 400, res.text
        assert res.json()["error"] == (f"{field} eye: P5_left.dcm: its DICOM laterality says the right eye, its file name the left eye; "
                                       "correct one of them")


def test_a_dicom_whose_laterality_tags_disagree_is_refused_in_either_field(client, dicom, tmp_path):
    """ImageLaterality R beside Laterality L: the file cannot say which eye it is, so no field is right."""
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom(10, laterality="R"))
    ds = pydicom.dcmread(path)
    ds.Laterality = "L"
    ds.save_as(path)
    for field in ("left", "right"):
        res = client.post("/api/predict", files={field: ("scan.dcm", path.read_bytes(), "application/dicom")})
        assert res.status_code == 400, res.text
        assert res.json()["error"] == (f"{field} eye: scan.dcm: its DICOM ImageLaterality says the right eye, its DICOM Laterality "
                                       "the left eye; correct one of them")
    assert client.post("/api/predict", files={"file": ("scan.dcm", path.read_bytes())}).status_code == 200


def test_a_dicom_named_as_a_jpeg_is_read_as_dicom(client, dicom):
    data = dicom(9, patient_id="A", laterality="R")
    as_dcm = client.post("/api/predict", files={"right": ("scan.dcm", data, "application/dicom")})
    as_jpg = client.post("/api/predict", files={"right": ("scan.jpg", data, "image/jpeg")})
    assert as_jpg.status_code == 200, as_jpg.text
    assert as_jpg.json()["eyes"]["right"]["score_referable"] == pytest.approx(as_dcm.json()["eyes"]["right"]["score_referable"])
    # Its header is read too: laterality against the field, PatientID against the other eye's name.
    res = client.post("/api/predict", files={"left": ("scan.jpg", data, "image/jpeg")})
    assert res.status_code == 400 and "scan.jpg: its DICOM laterality says the right eye" in res.json()["error"]
    res = post(client, ("scan.jpg", data), ("B_left.jpeg", jpeg(0, 2)))
    assert res.status_code == 400 and "scan.jpg: patient 'A' by its DICOM PatientID; B_left.jpeg: patient 'B'" in res.json()["error"]


@pytest.mark.parametrize(("right", "left"), [("007_right.jpeg", "7_left.jpeg"), ("P  7_right.jpeg", "p 7_left.jpeg")])
def test_lookalike_patients_are_two_patients_as_in_predict(client, right, left):
    """predict keeps 007 and 7 apart (noted); serve folded them into one patient and paired them (probe 23, W7)."""
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert f"{right}: patient '{right.rsplit('_', 1)[0]}' by its name; {left}: patient '{left.rsplit('_', 1)[0]}' by its name" in error
    assert error.endswith("differ only in case, spacing, separators or leading zeros are two patients to predict too: spell them alike)")


def test_an_anonymised_patient_id_is_no_patient_so_the_names_decide(client, dicom):
    """Two DICOM files of an anonymised export (PatientID ANONYMOUS) named for patients 10131 and
    10007 were one patient ANONYMOUS, paired (probe 23, finding 2)."""
    res = post(client, ("10131_right.dcm", dicom(11, patient_id="ANONYMOUS")), ("10007_left.dcm", dicom(12, patient_id="ANONYMOUS")))
    assert res.status_code == 400, res.text
    assert "(10131_right.dcm: patient '10131' by its name; 10007_left.dcm: patient '10007' by its name)" in res.json()["error"]


def test_one_patient_id_on_photos_named_for_two_patients_is_refused_as_predict_pairs_neither(client, dicom, tmp_path):
    """An export that gives every file one PatientID: predict keeps the patient but pairs neither
    eye (its resolver notes a contradictory patient); serve asks that resolver, so it does not
    grade them as one patient's eyes either (before: 200, paired)."""
    from drgrader.data.identity_notes import CONTRADICTORY_PATIENT, note_kinds
    from drgrader.data.inputs import collect_inputs

    right, left = dicom(13, patient_id="P9"), dicom(14, patient_id="P9")
    res = post(client, ("10131_right.dcm", right), ("10007_left.dcm", left))
    assert res.status_code == 400, res.text
    assert res.json()["error"] == ("the 'right' and 'left' photos are of two patients by their names (10131_right.dcm, 10007_left.dcm), "
                                   "though both are patient 'P9' by their DICOM PatientID: send the two eyes of one patient "
                                   "(or correct the PatientID)")
    export = tmp_path / "export"
    export.mkdir()
    (export / "10131_right.dcm").write_bytes(right)
    (export / "10007_left.dcm").write_bytes(left)
    table = collect_inputs([export])
    assert table["eye"].tolist() == ["", ""] and all(CONTRADICTORY_PATIENT in note_kinds(n) for n in table["identity_note"])
    # Named for one patient, or for none: one PatientID is one patient.
    assert post(client, ("10131_right.dcm", right), ("10131_left.dcm", left)).status_code == 200
    assert post(client, ("scan1.dcm", right), ("scan2.dcm", left)).status_code == 200


def test_an_uploaded_dicom_header_is_read_once(client, dicom, monkeypatch):
    """Read for the identity check, and handed to grading (before: read again to grade)."""
    from drgrader.data import dicom as dicom_module
    from drgrader.data import images

    reads = []
    read_header = dicom_module.read_header

    def counted(path):
        reads.append(path)
        return read_header(path)

    monkeypatch.setattr(dicom_module, "read_header", counted)
    monkeypatch.setattr(images, "read_header", counted)
    res = post(client, ("P7_R.dcm", dicom(15, patient_id="P7", laterality="R")), ("P7_L.dcm", dicom(16, patient_id="P7", laterality="L")))
    assert res.status_code == 200, res.text
    assert len(reads) == 2


def test_one_patient_id_on_dicom_headers_naming_two_people_is_refused(client, tmp_path):
    # Probe 41 BE6: one PatientID, two PatientNames: graded as one patient's eyes.
    import pydicom

    def named(seed, laterality, name, study_date=""):
        path = write_dicom(tmp_path / f"{seed}.dcm", fundus(2, seed), patient_id="1001", laterality=laterality)
        ds = pydicom.dcmread(path)
        ds.PatientName = name
        if study_date:
            ds.StudyDate = study_date
        ds.save_as(path)
        return path.read_bytes()

    res = post(client, ("r.dcm", named(1, "R", "SMITH^JOHN")), ("l.dcm", named(2, "L", "JONES^MARY")))
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert "are of patient '1001' by their DICOM PatientID, but their headers name two people" in error
    assert "SMITH" not in error and "JONES" not in error
    assert post(client, ("r.dcm", named(1, "R", "SMITH^JOHN")), ("l.dcm", named(2, "L", "smith^john"))).status_code == 200
    # Probe 53 BQ11: headers without a PatientID, the patient from the names: not said to be the PatientID's.
    right, left = (write_dicom(tmp_path / f"n{seed}.dcm", fundus(2, seed), laterality=side) for seed, side in ((3, "R"), (4, "L")))
    for path, name in ((right, "SMITH^JOHN"), (left, "DOE^JANE")):
        ds = pydicom.dcmread(path)
        ds.PatientName = name
        ds.save_as(path)
    res = post(client, ("dc2_r.dcm", right.read_bytes()), ("dc2_l.dcm", left.read_bytes()))
    assert res.status_code == 400 and "are of patient 'dc2' by their name, but their headers name two people" in res.json()["error"]
    # Probe 55 BS4: nor without any patient id: two people's headers paired by the form alone.
    res = post(client, ("OD.dcm", right.read_bytes()), ("OS.dcm", left.read_bytes()))
    assert res.status_code == 400, res.text
    assert "have no patient id, and their DICOM headers name two people (they differ in PatientName)" in res.json()["error"]
    # Probe 43 BG4: one person's eyes from two exams eight years apart are no pair.
    res = post(client, ("r.dcm", named(1, "R", "SMITH^JOHN", "20150301")), ("l.dcm", named(2, "L", "SMITH^JOHN", "20230502")))
    assert res.status_code == 400 and "of patient '1001' are of two study dates by their DICOM headers" in res.json()["error"]


@pytest.mark.parametrize(("right", "left", "shown"), [
    ("1001/OD.jpg", "1002/OS.jpg", ("1001/OD.jpg", "1002/OS.jpg")),
    # (a full Windows path, C:\\scans\\1001\\OD.jpg, reaches the server as its base name: python-multipart cuts it)
    ("scans\\1001\\OD.jpg", "scans\\1002\\OS.jpg", ("scans/1001/OD.jpg", "scans/1002/OS.jpg")),
])
def test_upload_names_with_two_patients_folders_are_refused_as_predict_keeps_them_apart(client, right, left, shown):
    # probe 53 BQ5: the folder was cut off, and two people's OD.jpg and OS.jpg answered as one patient
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert f"{shown[0]}: patient '1001' by its folder; {shown[1]}: patient '1002' by its folder" in error


def test_upload_names_in_one_patients_folder_or_visit_folders_are_read_as_predict_reads_them(client):
    res = post(client, ("scans/1001/OD.jpg", jpeg(2, 1)), ("scans/1001/OS.jpg", jpeg(0, 2)))
    assert res.status_code == 200, res.text
    assert res.json()["eyes"]["right"]["filename"] == "scans/1001/OD.jpg"
    res = post(client, ("1001/V1/OD.jpg", jpeg(2, 1)), ("1001/V2/OS.jpg", jpeg(0, 2)))
    assert res.status_code == 400, res.text
    assert "of patient '1001' are of two visits by their visit folders" in res.json()["error"]


@pytest.mark.parametrize(("right", "left"), [("Patient002.jpg", "Patient014.jpg"), ("10007.jpg", "10570.jpg")])
def test_two_photos_named_for_two_patients_numbers_are_refused(client, right, left):
    # probe 57 BU9: names without an eye had no patient, so each "agreed with any": two people paired, 200
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 400 and "are named for two patients' numbers" in res.json()["error"], res.text
    for pair in (("IMG_0001.jpg", "IMG_0002.jpg"), ("scan.jpg", "1002.jpg"), ("1001.jpg", "01001.jpg")):
        assert post(client, (pair[0], jpeg(2, 1)), (pair[1], jpeg(0, 2))).status_code == 200, pair


@pytest.mark.parametrize(("right", "left", "numbers"), [
    ("Patient2.jpg", "Patient14.jpg", ("2", "14")),
    ("Patient 2.jpg", "Patient 14.jpg", ("2", "14")),
    ("5001_R_20240101.jpg", "5002_L_20240101.jpg", ("5001", "5002")),
    ("5001_R_2024-01-01.jpg", "5002_L_2024-01-01.jpg", ("5001", "5002")),
    ("20240101_10007.jpg", "20240101_10570.jpg", ("10007", "10570")),
    ("10007_2024.jpg", "10570_2024.jpg", ("10007", "10570")),
    ("Patient002_R.jpg", "Patient014.jpg", ("002", "014")),
    ("10193_right.jpg", "10570.jpg", ("10193", "10570")),
])
def test_two_patients_numbers_in_any_shape_of_name_are_refused(client, right, left, numbers):
    # probe 58 BV1: only one number of 3+ digits in each name, both without a patient, was read: two people paired, 200
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 400, res.text
    assert (f"are named for two patients' numbers ({right}: {numbers[0]!r}; {left}: {numbers[1]!r}), and predict takes "
            "them as two patients: send the two eyes of one patient") in res.json()["error"]


@pytest.mark.parametrize(("right", "left"), [
    ("10193_right.jpg", "10193_left.jpg"), ("upload.jpg", "OS.jpg"), ("IMG_0001.jpg", "IMG_0002.jpg"),
    ("10193_right.jpg", "10193.jpg"), ("fundus_R_103015.jpg", "fundus_L_103015.jpg"), ("OD_1.jpg", "OS_2.jpg"),
    ("20240101_103015.jpg", "20240101_103020.jpg"),  # a phone's names: one day's shots
    ("image (1).jpg", "image (2).jpg"), ("Copy of scan.jpg", "scan.jpg"),  # a copy's marks are no patient's number
])
def test_names_of_one_patients_number_or_of_none_are_graded(client, right, left):
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 200, res.text


@pytest.mark.parametrize(("right", "left", "exams"), [
    ("20230101_R.jpg", "20240615_L.jpg", ("'20230101' by its name", "'20240615' by its name")),
    ("2024-05-01_OD.jpg", "2025-06-02_OS.jpg", ("'2024-05-01' by its name", "'2025-06-02' by its name")),
    ("V1_R.jpg", "V2_L.jpg", ("'V1' by its name", "'V2' by its name")),
    ("Baseline_R.jpg", "FU1_L.jpg", ("'Baseline' by its name", "'FU1' by its name")),
    ("20230101/OD.jpg", "20240615/OS.jpg", ("'20230101' by its folder", "'20240615' by its folder")),
])
def test_photos_named_for_two_dates_or_visits_are_refused_as_two_exams(client, right, left, exams):
    # probe 58 BV6: a date or visit "agreed with any" patient, so with another date too: two exams paired, 200
    res = post(client, (right, jpeg(2, 1)), (left, jpeg(0, 2)))
    assert res.status_code == 400, res.text
    assert res.json()["error"] == (f"the 'right' and 'left' photos are of two exams ({right}: {exams[0]}; {left}: {exams[1]}: "
                                   "a date or visit each): send the two eyes of one exam")
    for pair in (("20230101_R.jpg", "20230101_L.jpg"), ("2023-01-01_R.jpg", "20230101_L.jpg"), ("20230101_R.jpg", "upload.jpg")):
        assert post(client, (pair[0], jpeg(2, 1)), (pair[1], jpeg(0, 2))).status_code == 200, pair


@pytest.mark.parametrize(("field", "name", "folder", "eye"), [
    ("left", "OD/10193.jpg", "OD", "right"), ("left", "Right Eye/10193.jpg", "Right Eye", "right"),
    ("left", "1001/OD/IMG_0001.jpg", "OD", "right"), ("right", "scans\\OS\\10193.jpg", "OS", "left"),
    ("right", "1001/left/IMG_0001.jpg", "left", "left"),  # (not L/: probe 59 BW10, test_rule_serve_names.py)
])
def test_a_folder_named_for_the_other_eye_is_refused_as_a_name_is(client, field, name, folder, eye):
    # probe 58 BV5: the upload's folder was read for the patient, not the eye: a right eye graded as the left, 200
    res = client.post("/api/predict", files={field: (name, jpeg(2, 1), "image/jpeg")})
    assert res.status_code == 400, res.text
    shown = name.replace("\\", "/")
    assert res.json()["error"] == f"{field} eye: {shown}: its folder {folder!r} says the {eye} eye; send it as '{eye}'"
    assert client.post("/api/predict", files={eye: (name, jpeg(2, 1), "image/jpeg")}).status_code == 200


def test_a_folder_and_name_saying_two_eyes_or_patients_folders_above_eye_folders_are_refused(client):
    for field in ("left", "right"):  # probe 58 BV5
        res = client.post("/api/predict", files={field: ("OD/10193_left.jpg", jpeg(2, 1), "image/jpeg")})
        assert res.status_code == 400, res.text
        assert res.json()["error"] == (f"{field} eye: OD/10193_left.jpg: its file name says the left eye, its folder 'OD' "
                                       "the right eye; correct one of them")
    res = post(client, ("1001/OD/IMG_0001.jpg", jpeg(2, 1)), ("1002/OS/IMG_0002.jpg", jpeg(0, 2)))
    assert res.status_code == 400, res.text
    assert ("(1001/OD/IMG_0001.jpg: patient '1001' by its folder; 1002/OS/IMG_0002.jpg: patient '1002' by its folder): "
            "send the two eyes of one patient") in res.json()["error"]
    res = post(client, ("1001/OD/IMG_0001.jpg", jpeg(2, 1)), ("1001/OS/IMG_0002.jpg", jpeg(0, 2)))
    assert res.status_code == 200, res.text
