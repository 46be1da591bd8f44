"""The data-set readers by format name (:data:`READERS`: what ``data.format`` names) and the
detection of which format a folder holds. The readers themselves: the published data sets'
layouts (Kaggle EyePACS, APTOS, IDRiD, Messidor-2, DeepDRiD, DDR) in :mod:`.published_readers`,
a generic CSV and grade folders in :mod:`.generic_readers`. Each returns raw label rows;
:mod:`.manifest` validates them all the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from drgrader.config import DataConfig
from drgrader.data.generic_readers import grade_folders, read_csv_format, read_folders
from drgrader.data.label_files import DataError, Found
from drgrader.data.published_readers import (
    ddr_base,
    deepdrid_base,
    idrid_base,
    read_aptos,
    read_ddr,
    read_deepdrid,
    read_idrid,
    read_kaggle,
    read_messidor2,
)

READERS: dict[str, Callable[[Path, DataConfig], Found]] = {
    "kaggle": read_kaggle,
    "aptos": read_aptos,
    "idrid": read_idrid,
    "messidor2": read_messidor2,
    "deepdrid": read_deepdrid,
    "ddr": read_ddr,
    "csv": read_csv_format,
    "folders": read_folders,
}


def detect_format(root: str | Path) -> str:
    """The data-set format whose published files are present in ``root``."""
    root = Path(root)
    if (root / "trainLabels.csv").is_file():
        return "kaggle"
    if (root / "train.csv").is_file() and (root / "train_images").is_dir():
        return "aptos"
    if idrid_base(root) is not None:
        return "idrid"
    if (root / "messidor_data.csv").is_file():
        return "messidor2"
    if deepdrid_base(root) is not None:
        return "deepdrid"
    if ddr_base(root) is not None:
        return "ddr"
    if (root / "labels.csv").is_file():
        return "csv"
    if grade_folders(root):
        return "folders"
    raise DataError(
        f"cannot tell the data-set format of {root}: found none of trainLabels.csv (kaggle), "
        "train.csv + train_images/ (aptos), 'B. Disease Grading' (idrid), messidor_data.csv "
        "(messidor2), regular_fundus_images/ (deepdrid), DR_grading/train.txt (ddr), "
        "labels.csv (csv), grade folders 0..4 (folders); set data.format and data.labels"
    )
