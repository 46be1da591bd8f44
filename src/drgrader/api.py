"""drgrader from Python: the same workflows the command line runs, as small keyword-only calls.

>>> import drgrader
>>> grader = drgrader.load_grader()          # the built-in grader; or a name, or a bundle folder  # doctest: +SKIP
>>> photos, patients = drgrader.grade(grader, ["clinic/2026-12-05/"])  # doctest: +SKIP
>>> patients[["patient_id", "decision", "reason"]]                     # doctest: +SKIP

``grade`` returns the two tables ``drgrader predict`` writes (one row per photo, one per patient);
it also takes PIL images and NumPy arrays, named by ``names`` (``<patient>_<left|right>`` names
give the patient and eye, as file names do). Nothing here is a second implementation: each call
is a thin layer over :mod:`drgrader.workflows` and :mod:`drgrader.inference`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drgrader.config import ConfigError, ExperimentConfig, load_config
from drgrader.config_values import check_refer_share, distinct_views, plain_name
from drgrader.data.images import jpeg_step_of, pil_to_rgb, save_lossless_copy
from drgrader.data.quality import COMPRESSION_THRESHOLD, assess_quality, compression_level, jpeg_step_at, measure_photo
from drgrader.inference.builtin import resolve_bundle
from drgrader.inference.bundle import Bundle, load_bundle

__all__ = ["load_grader", "grade", "explain", "train", "evaluate"]

Photo = Any  # a path (file or folder), a PIL image, or an RGB uint8 array H x W x 3
CHANNEL_ORDERS = ("RGB", "BGR")
log = logging.getLogger("drgrader")


def load_grader(bundle: str | Path | Bundle | None = None, *, backend: str = "auto") -> Bundle:
    """A grader: the built-in one (None), a built-in grader's name (``drgrader models``), or a
    bundle folder (or its ``bundle.json``); ``backend``: ``"auto"``, ``"torch"`` or ``"onnx"``
    (no PyTorch needed)."""
    if isinstance(bundle, Bundle):
        return bundle
    return load_bundle(resolve_bundle(bundle), backend)


def _as_rgb(photo: Photo, name: str, channels: str | None = None) -> np.ndarray:
    if isinstance(photo, np.ndarray):
        array = photo
    elif hasattr(photo, "convert"):  # a PIL image
        array = np.asarray(pil_to_rgb(photo))  # as a file is read: upright (EXIF), 16-bit scaled, alpha on black
    else:
        raise TypeError(f"a photo is a path, a PIL image or an RGB array, not {type(photo).__name__}")
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"an array photo must be RGB uint8 of shape H x W x 3, got {array.dtype} {array.shape}")
    # A PIL image opened from a file has its channels known; one made from an array (Image.fromarray
    # of cv2.imread's) holds whatever order the array had (probe 39 BC7), so it is checked as one.
    if hasattr(photo, "convert") and photo.format is not None:
        if channels == "BGR":
            raise ValueError(f"{name}: channels='BGR', but it is a PIL image opened from a {photo.format} file, whose "
                             "channels are RGB; leave channels out")
        return array
    if channels == "BGR":
        return np.ascontiguousarray(array[..., ::-1])
    if channels is None:
        _check_channel_order(array, name)
    return array


# Mean red / mean blue inside the fundus (benchmarks/results/colour_check.json, channel_order_rgb):
# 1.62-69 in camera originals, 0.78-1.55 in eyepacs-256, whose channels were equalised one by one
# (the order cannot be told from their colours). Under 1 / BGR_RATIO an array is taken for OpenCV's BGR order.
BGR_RATIO = 1.5


def channel_order_score(array: np.ndarray) -> float:
    """Mean red over mean blue inside the fundus (over all lit pixels when none is found): a
    fundus is red (the choroid's blood), so well above 1 in RGB order and well below in BGR,
    unless a processing step equalised the channels."""
    measures = measure_photo(array)
    if measures is not None:
        return measures.red_to_blue
    sample = array[:: max(1, array.shape[0] // 128), :: max(1, array.shape[1] // 128)].reshape(-1, 3).astype(np.float64)
    lit = sample[sample.sum(axis=1) > 30]  # not the black surround
    return float(lit[:, 0].mean() / max(lit[:, 2].mean(), 1.0)) if len(lit) else 1.0


def _jpeg_step(photo: Photo) -> float | None:
    """The JPEG step a PIL image opened from a JPEG still carries (None for arrays and others)."""
    return jpeg_step_of(photo) if hasattr(photo, "convert") else None


# The coarse JPEG an in-memory photo of unknown origin is warned about: an e-mail or messenger copy.
_COARSE_JPEG_QUALITY = 30


def _compression_unchecked(photo: Photo, rgb: np.ndarray, input_size: int) -> bool:
    """An in-memory photo whose JPEG origin is lost (an array, or a PIL image not opened from a
    file: ``.convert('RGB')``, ``.resize()``, ``.copy()`` drop it) small enough that, saved as a
    coarse JPEG, the compression check would have flagged it. Its short side stands for the
    fundus (which fills most of it) rather than finding the fundus in every photo."""
    if hasattr(photo, "convert") and photo.format is not None:  # opened from a file: checked as that file is
        return False
    return compression_level(jpeg_step_at(_COARSE_JPEG_QUALITY), min(rgb.shape[:2]), input_size) > COMPRESSION_THRESHOLD


def _check_channel_order(array: np.ndarray, name: str) -> None:
    """Refuse an array in OpenCV's BGR order (``cv2.imread``), which would be graded in the wrong
    colours without a word; warn when its colours cannot tell the order."""
    score = channel_order_score(array)
    if score < 1 / BGR_RATIO:
        raise ValueError(f"{name}: the array looks like BGR (OpenCV's order): its blue is {1 / max(score, 1e-6):.1f}x its "
                         "red, the reverse of a fundus; pass cv2.cvtColor(photo, cv2.COLOR_BGR2RGB) or channels='BGR' "
                         "(or the PIL image opened from its file, whose channels are known)")
    if score < BGR_RATIO:
        log.warning("%s: the array's red and blue are balanced (red/blue %.2f, as in photos whose channels were "
                    "equalised): its channel order cannot be told from its colours and it is taken as RGB; a cv2.imread "
                    "array is BGR: pass channels='BGR' (or channels='RGB' to say it is RGB)", name, score)


def _check_channels(channels: str | None) -> None:
    if channels is not None and channels not in CHANNEL_ORDERS:
        raise ValueError(f"channels: {channels!r} is not one of {', '.join(CHANNEL_ORDERS)}")


def _photo_name(name: str) -> str:
    """An in-memory photo's name, which becomes a file in grade's temporary folder: one plain file
    name, its image extension stripped as predict strips it (``10_left.jpeg`` is ``10_left``)."""
    from drgrader.data.label_files import strip_image_extension

    if not isinstance(name, str):
        raise TypeError(f"names: a name is text, not {type(name).__name__}")
    try:
        plain_name(name)
        return plain_name(strip_image_extension(name))
    except ValueError as exc:
        raise ValueError(f"names: {exc} (a photo's name is one file name, e.g. 10_left)") from None


def grade(grader: str | Path | Bundle | None, photos: Photo | Sequence[Photo], *, names: Sequence[str] | None = None,
          tta: list[str] | None = None, refer_share: float | None = None,
          batch_size: int = 16, channels: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grade ``photos`` and decide per patient: ``(photos table, patients table)``, the rows and
    columns of ``drgrader predict``'s CSV and its ``_patients.csv``.

    ``photos``: paths of photos, folders or CSVs (as ``predict`` takes them; one path alone too),
    or in-memory PIL images / RGB arrays, named by ``names`` (default ``photo-0``, ``photo-1``,
    ...; each one plain file name). A PIL image opened from a JPEG is checked for compression
    as its file is; an array or a converted image is not (a warning says so when it is small).
    ``channels``: the channel order of array photos (and of PIL images made from arrays), ``"RGB"``
    or ``"BGR"`` (``cv2.imread``'s); by default RGB, and one whose colours are those of a BGR
    fundus is refused.
    ``refer_share``: the share of the grader's validation patients its uncertainty cut-off sends to a human
    grader (default: the grader's); a batch sends more or fewer as its patients are harder or easier."""

    from drgrader.data.identity import resolve_identity
    from drgrader.data.identity_notes import TEMP_FOLDER_PREFIX, warn_identity
    from drgrader.data.input_files import input_rows
    from drgrader.data.inputs import collect_inputs
    from drgrader.inference.predict import (
        OUTPUT_COLUMNS,
        PICTURE_COLUMN,
        patient_table,
        predict_images,
        ready_for_patients,
        typed_predictions,
        warn_other_tta,
    )

    photos = _photo_list(photos)
    if not photos:  # before: "no photos found in " (ending on nothing)
        raise ValueError("no photos given: give a path, a PIL image, an RGB array or a list of them")
    if tta is not None:
        try:
            distinct_views(tta)
        except ValueError as exc:
            raise ConfigError(f"tta: {exc}") from None
    if refer_share is not None:
        check_refer_share(refer_share, "refer_share")
    _check_channels(channels)
    in_memory = [p for p in photos if not isinstance(p, (str, Path))]
    if in_memory and len(in_memory) != len(photos):
        raise ValueError("give either paths or in-memory photos, not both in one call")
    if names is not None:
        if isinstance(names, str):  # one photo's name, not 'LR' as the names 'L' and 'R'
            if len(photos) != 1:
                raise TypeError("names: give a list of names, one per photo, not one string")
            names = [names]
        if isinstance(names, (Set, Mapping)):  # unordered: a set's order is the hash seed's, so names would swap photos
            raise ValueError(f"names: give a list of names, one per photo in the order of the photos, not a {type(names).__name__}")
        names = list(names)  # a generator or tuple of names: in its order
        if len(names) != len(photos):
            raise ValueError(f"{len(names)} names for {len(photos)} photos")
        if not in_memory:
            raise ValueError("names name in-memory photos (PIL images, arrays); a path is named by its file")
        names = [_photo_name(name) for name in names]
        if len(set(names)) != len(names):  # one file each: a repeat would replace a photo
            raise ValueError(f"the name {next(n for n in names if names.count(n) > 1)!r} is given to two photos; "
                             "names must be unique")
        _warn_names_against_files(in_memory, names)
    if not in_memory:  # a photo's path given twice is one photo, one row: said, as the rows are fewer (probe 50 BN6)
        files = [os.path.abspath(p) for p in photos if Path(p).is_file()]
        if repeated := sorted({f for f in files if files.count(f) > 1}):
            log.warning("%d photo(s) are given more than once (e.g. %s): each is graded once, one row, so the table "
                        "has fewer rows than the photos given", len(repeated), repeated[0])
    bundle = load_grader(grader)
    bundle.warn_if_unfitted()
    bundle.warn_if_synthetic()  # probe 36 AZ5: said by predict and serve only
    warn_other_tta(bundle, tta)
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_FOLDER_PREFIX}grade-") as tmp:
        if in_memory:
            # Lossless PNGs through the path pipeline: the same decoding, quality check and
            # preprocessing as predict, and patient and eye read from the names. A PIL image
            # opened from a JPEG keeps its quantisation step, so a coarse copy is flagged as its file is.
            rows, unchecked, used = [], 0, set()
            for i, photo in enumerate(in_memory):
                name = names[i] if names else f"photo-{i}"
                # A PIL image opened from a file is saved under its file's name, the name given a claim
                # against it (as a list's image id cell is): a names list in another order is noted on
                # each photo and never pairs two patients' eyes (probe 34 AX10: a log line only).
                own = Path(getattr(photo, "filename", "") or "").stem if names else ""
                claim = name if own and own != name and own not in used and own not in (names or ()) else ""
                stem = own if claim else name if name not in used else f"{name}~{i}"  # one file each
                used.add(stem)
                path = Path(tmp) / f"{stem}.png"
                rgb = _as_rgb(photo, name, channels)
                unchecked += _compression_unchecked(photo, rgb, bundle.input_size)
                save_lossless_copy(path, rgb, _jpeg_step(photo))
                rows += input_rows(path, image_id=name, csv_image_id=claim, by_folder=False)  # the folder is a temporary one
            if unchecked:
                log.warning("%d of %d photos are arrays or PIL images that no longer know the JPEG they came from "
                            "(.convert, .resize, .copy, numpy): whether each is a small, coarsely compressed copy (an "
                            "e-mail copy, graded high) cannot be checked; pass the file paths (or PIL images opened "
                            "from the files) so that compressed copies can be checked", unchecked, len(in_memory))
        table = resolve_identity(rows) if in_memory else collect_inputs([Path(p) for p in photos])
        if table.empty:
            raise ConfigError(f"no photos found in {', '.join(str(p) for p in photos)}")
        preds = typed_predictions(predict_images(bundle, table, batch_size=batch_size, tta=tta)[[*OUTPUT_COLUMNS, PICTURE_COLUMN]])
        preds, points = ready_for_patients(bundle, preds, refer_share=refer_share)  # compares the pictures, drops their prints
    warn_identity(preds)
    return preds, patient_table(preds, points)


def _warn_names_against_files(photos: list, names: list[str]) -> None:
    """A PIL image opened from a file knows the file's name: a ``names`` entry naming another patient
    or eye (a names list in another order than the photos) is taken, as a list's image id cell is,
    but said, naming the first."""
    from drgrader.data.eyes import patient_and_eye

    shifted = [(name, Path(photo.filename).name) for photo, name in zip(photos, names)
               if getattr(photo, "filename", "") and (own := patient_and_eye(Path(photo.filename).stem))
               and (given := patient_and_eye(name)) and given != own]
    if shifted:
        log.warning("%d of %d names give another patient or eye than their image's own file (e.g. %r for %s): the names "
                    "are taken; check that names are in the order of the photos", len(shifted), len(names), *shifted[0])


def _photo_list(photos: Photo | Sequence[Photo]) -> list[Photo]:
    """``photos`` as a list: one photo (a path, a PIL image, an array H x W x 3) is a list of one,
    and any other iterable (a generator, a tuple, a 4-D array of photos) is listed."""
    if isinstance(photos, (str, Path)) or hasattr(photos, "convert"):  # not characters, not a PIL image's rows
        return [photos]
    if hasattr(photos, "columns"):  # a DataFrame iterates over its column names, which are not photos
        raise TypeError("photos: give the paths as a list, not a DataFrame (e.g. df['path'].tolist())")
    if isinstance(photos, np.ndarray):
        if photos.dtype.kind in "USO" and photos.ndim == 1:  # an array of paths, not pixels
            return [str(p) if photos.dtype.kind in "US" else p for p in photos]
        if photos.dtype.kind in "USO":
            raise TypeError(f"photos: an array of shape {photos.shape} of {photos.dtype}: give the paths as a list")
        return list(photos) if photos.ndim == 4 else [photos]  # a batch N x H x W x 3, else one photo
    if isinstance(photos, (bytes, dict)) or not hasattr(photos, "__iter__"):
        raise TypeError(f"photos: give a path, a PIL image, an RGB array or a list of them, not {type(photos).__name__}")
    return list(photos)


def explain(grader: str | Path | Bundle, photo: Photo, *, channels: str | None = None) -> dict:
    """Grad-CAM of one photo (path, PIL image or RGB array; ``channels`` as in :func:`grade`): the
    prediction, the preprocessed input and heat maps for the grade and for referable DR (needs
    the [explain] extra)."""
    from drgrader.extras import require
    from drgrader.inference.explain import explain_file, explain_image

    require("explain", "drgrader.explain")
    _check_channels(channels)
    bundle = load_grader(grader)
    bundle.warn_if_synthetic()
    if not isinstance(photo, (str, Path)):
        rgb = _as_rgb(photo, "photo", channels)
        return explain_image(bundle, rgb, quality=assess_quality(rgb, None, bundle.input_size, jpeg_step=_jpeg_step(photo)))
    return explain_file(bundle, photo)


def _config(config: str | Path | ExperimentConfig, overrides: dict[str, Any] | None) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        if overrides:
            raise ValueError("give overrides with a config name or file, or change the ExperimentConfig itself")
        return config
    return load_config(config, [f"{key}={value}" for key, value in (overrides or {}).items()])


def train(config: str | Path | ExperimentConfig, *, overrides: dict[str, Any] | None = None,
          out: str | Path | None = None, progress: bool = False) -> Path:
    """Train a config (a shipped recipe's name, a YAML path, or an ExperimentConfig) with
    optional ``overrides`` ({"train.epochs": 3}); returns the run folder (bundle, metrics, report)."""
    from drgrader.extras import require
    from drgrader.workflows.train import train as run

    require("train", "drgrader.train")
    return run(_config(config, overrides), None if out is None else Path(out), progress=progress)


def evaluate(model: str | Path, data: str | Path, *, out: str | Path | None = None) -> dict:
    """Evaluate a run folder or bundle on a labelled data folder (as ``drgrader evaluate``);
    returns its metrics (``metrics["test"]``: the figures with CIs)."""
    import json

    from drgrader.workflows.evaluate import evaluate_command

    folder = evaluate_command(Path(model), data=str(data), out=None if out is None else Path(out))
    return json.loads((Path(folder) / "metrics.json").read_text())
