"""The web demo's two-eye check reads an upload's name and folders as predict would (probe 59): a
patient's folder above a name that gives no patient, an eye in a folder's name with more words, a
phone's or messenger's counter that is no patient's number, and eye folders by predict's rule."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from dicom_files import write_dicom

from drgrader.synth import make_fundus


def jpeg(grade: int, seed: int) -> bytes:
    ok, data = cv2.imencode(".jpeg", cv2.cvtColor(make_fundus(grade, np.random.default_rng(seed), height=128), cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def post(client, right: str, left: str, data: tuple[bytes, bytes] | None = None):
    right_data, left_data = data or (jpeg(2, 1), jpeg(0, 2))
    return client.post("/api/predict", files={"right": (right, right_data, "image/jpeg"), "left": (left, left_data, "image/jpeg")})


@pytest.mark.parametrize(("right", "left", "said"), [
    ("P1001/scan.jpg", "P1002/scan.jpg", "patient 'P1001' by its folder; P1002/scan.jpg: patient 'P1002' by its folder"),
    ("1001/IMG_0001.jpg", "1002/IMG_0003.jpg", "patient '1001' by its folder; 1002/IMG_0003.jpg: patient '1002' by its folder"),
    ("Smith John/DSC_0042.JPG", "Doe Jane/DSC_0043.JPG",
     "patient 'Smith John' by its folder; Doe Jane/DSC_0043.JPG: patient 'Doe Jane' by its folder"),
    ("1001/IMG_0001.jpg", "1002_left.jpg", "patient '1001' by its folder; 1002_left.jpg: patient '1002' by its name"),
    ("1001_OD/IMG_0001.jpg", "1002_OS/IMG_0002.jpg",  # probe 59 BW11: a folder of a patient and eye, as a name
     "patient '1001' by its folder; 1002_OS/IMG_0002.jpg: patient '1002' by its folder"),
])
def test_two_patients_folders_above_names_without_a_patient_are_refused(client, right, left, said):
    # probe 59 BW3: a folder was read only above a name that is the eye alone (1001/OD.jpg): two people paired, 200
    res = post(client, right, left)
    assert res.status_code == 400, res.text
    assert res.json()["error"] == (f"the 'right' and 'left' photos are of two patients ({right}: {said}): send the two eyes "
                                   "of one patient")


@pytest.mark.parametrize(("right", "left"), [
    ("1001/IMG_0001.jpg", "1001/IMG_0002.jpg"), ("1001/IMG_0001.jpg", "upload.jpg"), ("scans/IMG_0001.jpg", "IMG_0002.jpg"),
    ("Smith/Fundus_OD/IMG_0001.jpg", "Smith/Fundus_OS/IMG_0002.jpg"), ("1001_OD/IMG_0001.jpg", "1001_OS/IMG_0002.jpg"),
])
def test_one_patients_folder_or_a_folder_on_one_side_only_is_graded(client, right, left):
    res = post(client, right, left)
    assert res.status_code == 200, res.text


@pytest.mark.parametrize(("name", "folder"), [
    ("Fundus_OD/IMG_0001.jpg", "Fundus_OD"), ("OD_Photos/x.jpg", "OD_Photos"), ("Right Eye Photos/x.jpg", "Right Eye Photos"),
    ("OD (1)/x.jpg", "OD (1)"), ("1001_OD/IMG_0001.jpg", "1001_OD"),
])
def test_a_folder_whose_name_says_the_other_eye_among_other_words_is_refused(client, name, folder):
    # probe 59 BW11: only a folder named by the eye alone (OD/) was read: a right eye graded as the left, 200
    res = client.post("/api/predict", files={"left": (name, jpeg(2, 1), "image/jpeg")})
    assert res.status_code == 400, res.text
    assert res.json()["error"] == f"left eye: {name}: its folder {folder!r} says the right eye; send it as 'right'"
    assert client.post("/api/predict", files={"right": (name, jpeg(2, 1), "image/jpeg")}).status_code == 200


@pytest.mark.parametrize(("right", "left"), [
    ("IMG-20240501-WA0003.jpg", "IMG-20240501-WA0004.jpg"), ("IMG_20240501_103015_1.jpg", "IMG_20240501_103015_2.jpg"),
    ("Scan_1.jpg", "Scan_2.jpg"), ("fundus1.jpg", "fundus2.jpg"), ("eye1.jpg", "eye2.jpg"), ("IM0001.jpg", "IM0002.jpg"),
    ("V1_R.jpg", "Visit1_L.jpg"), ("BL_R.jpg", "Baseline_L.jpg"),  # one visit spelt two ways
])
def test_a_phones_or_messengers_counters_are_no_patients_numbers(client, right, left):
    # probe 59 BW6: refused as "named for two patients' numbers" ('0003', '0004'), or V1 and Visit1 as two exams
    res = post(client, right, left)
    assert res.status_code == 200, res.text


def test_an_anonymised_dicom_medias_names_are_no_patients_numbers(client, tmp_path):
    # probe 59 BW6: IM0001.dcm + IM0002.dcm (laterality R and L, no PatientID) refused as two patients' numbers
    right, left = (write_dicom(tmp_path / f"{side}.dcm", make_fundus(2, np.random.default_rng(seed), height=128),
                               laterality=side).read_bytes() for seed, side in ((1, "R"), (2, "L")))
    for names in (("IM0001.dcm", "IM0002.dcm"), ("IM000001", "IM000002")):
        res = post(client, *names, data=(right, left))
        assert res.status_code == 200, (names, res.text)


@pytest.mark.parametrize(("right", "left"), [("Patient2.jpg", "Patient14.jpg"), ("Patient_1.jpg", "Patient_2.jpg"),
                                             ("P1.jpg", "P2.jpg"), ("1001_1.jpg", "1002_2.jpg")])
def test_a_patients_number_after_a_patients_word_is_still_refused(client, right, left):
    res = post(client, right, left)
    assert res.status_code == 400 and "are named for two patients' numbers" in res.json()["error"], res.text


@pytest.mark.parametrize(("field", "name"), [("right", "L/10193.jpg"), ("left", "R/10193.jpg"), ("left", "R0/IMG_0001.jpg")])
def test_a_letters_folder_is_no_eye_as_predict_reads_none(client, field, name):
    # probe 59 BW10: serve read L/ as the left eye where predict's eye rule (eyes.eye_of_folder) reads no letter
    res = client.post("/api/predict", files={field: (name, jpeg(2, 1), "image/jpeg")})
    assert res.status_code == 200, res.text
    res = post(client, "R/IMG_0001.jpg", "L/IMG_0002.jpg")  # nor a patient's folder: one patient's eyes by letter
    assert res.status_code == 200, res.text
