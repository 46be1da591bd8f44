"""One photo file given to ``predict``, ``explain`` or :func:`drgrader.grade`: whether it is a photo,
and the evidence of its identity (the DICOM tags, a link's name) as rows that
:func:`~drgrader.data.identity.resolve_identity` makes a table of."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from drgrader.data.dicom import frame_ref, header_or_none, is_dicom, split_frame_ref
from drgrader.data.eyes import eye_alone, eye_of_folder, folder_patient, patient_and_eye, visit_folder
from drgrader.data.identity_claims import VISIT_FOLDER, evidence
from drgrader.data.images import PARTIAL_DOWNLOADS, UNREAD_PHOTO_FORMATS
from drgrader.data.manifest import IMAGE_EXTENSIONS


def input_rows(path: Path, image_id: str | None = None, patient_id: str = "", eye: str = "",
               csv_image_id: str = "", by_folder: bool = True) -> list[dict]:
    """The evidence rows of one input file (:func:`~drgrader.data.identity.evidence`): the CSV's
    ``patient_id`` and ``eye`` when given, the DICOM tags (``PatientID``, ``ImageLaterality`` /
    ``Laterality``), and for a photo named by its eye alone (``P10/OD.jpeg``; ``by_folder``: a
    file of the user's, not a temporary copy) its folder's name. A multi-frame DICOM file gives one row per frame: path ``<file>#frame<N>``,
    image id ``<id>#frame<N>``. :func:`~drgrader.data.identity.resolve_identity` makes them a table."""
    image_id = image_id or path.stem
    source, frame = split_frame_ref(path)
    header = header_or_none(source)  # unreadable: its row says why when it is graded
    frames = header.frames if header is not None and frame is None else 1
    if not csv_image_id and (target := _linked_photo(source)) is not None:
        # A link named for one patient to another's photo (a link farm off by one; probe 34 AX15):
        # the link's name is a claim against the photo's own, as a CSV's image id cell is.
        source, csv_image_id = target, path.stem
    parent = Path(os.path.abspath(path)).parent
    folder = parent.name  # <patient>/<visit>/OD.jpg: the resolver takes the folder above (probe 48 BL5)
    visit = folder if visit_folder(folder) and parent.parent.name else ""
    by_folder = by_folder and bool(eye_alone(image_id)) and not eye_of_folder(folder)
    person = (*(header.person if header else ()), *([(VISIT_FOLDER, visit.casefold())] if visit else []))
    row = evidence(path, image_id, source, csv_image_id=csv_image_id, csv_patient=patient_id, csv_eye=eye,
                   folder_patient=folder_patient(folder) if by_folder else "", dicom_patient=header.patient_id if header else "",
                   dicom_laterality=header.laterality if header else (), person=person)
    if frames == 1:
        return [row]
    return [{**row, "path": frame_ref(path, k), "image_id": f"{image_id}#frame{k}"} for k in range(1, frames + 1)]


def _linked_photo(path: Path) -> Path | None:
    """The photo a symbolic link points at when the target's name says another patient or eye
    than the link's; None otherwise (not a link, or a name saying nothing)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # a loop or a dangling link: a row with its reason when graded
    named, linked = patient_and_eye(target.stem), patient_and_eye(path.stem)
    return target if named is not None and named != linked else None


def is_photo_file(path: Path) -> bool:
    """A photo by its extension (a stray space after it forgiven: ``10_left.jpeg ``), or a DICOM
    file by its content (exports often lack ``.dcm``; a DICOMDIR index holds no image)."""
    # A photo format drgrader does not read is a row saying so, so that its eye counts as not graded
    # (probe 34 AX17: its patient was decided on the other eye, "the only photo").
    if path.suffix.lower().strip() in (*IMAGE_EXTENSIONS, *UNREAD_PHOTO_FORMATS, *PARTIAL_DOWNLOADS):
        return True
    return path.name.upper() != "DICOMDIR" and is_dicom(path)


_ARCHIVES = ((b"PK\x03\x04", "a ZIP archive"), (b"PK\x05\x06", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"),
             (b"Rar!", "a RAR archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"BZh", "a bzip2 archive"))


def not_a_photo(path: Path) -> str | None:
    """Why a file given by name is not a photo to grade (``"not a photo (a ZIP archive): unpack it
    first"``), or None: a file named like a photo (a damaged one is a row saying why), a DICOM
    file, or one Pillow can identify whatever its name is a photo."""
    if not path.is_file() or is_photo_file(path):
        return None
    try:
        with Image.open(path):
            return None
    except (OSError, ValueError, Image.DecompressionBombError):
        pass
    with open(path, "rb") as fh:
        head = fh.read(512)
    kind = next((what for magic, what in _ARCHIVES if head.startswith(magic)), None)
    if kind is None and head[257:262] == b"ustar":
        kind = "a tar archive"
    if kind is not None:
        return f"not a photo ({kind}): unpack it first"
    return (f"not a photo (a {path.suffix.lower() or 'file without an extension'}{' file' if path.suffix else ''}): "
            f"give photos ({', '.join(IMAGE_EXTENSIONS)}), folders or CSV lists")
