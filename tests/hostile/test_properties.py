"""Property-based hostile inputs (Hypothesis): whatever a user types or a file holds, drgrader
either works or answers with its own one-line error; never another exception, never a change
to a file it did not make."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgrader.config import ConfigError, DataConfig, load_config
from drgrader.data.manifest import DataError, read_manifest
from drgrader.inference.bundle import BundleError
from drgrader.inference.bundle import read_manifest as read_bundle_manifest

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELDS = ["train.epochs", "train.lr", "data.image_size", "data.split.val", "eval.tta", "model.task", "name", "data.split"]


@FAST
@given(field=st.sampled_from(FIELDS) | st.text(max_size=20), value=st.text(max_size=40))
def test_any_set_override_is_valid_or_a_config_error(field, value):
    try:
        load_config(None, [f"{field}={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc).split("\n", 1)[0]
        assert len(str(exc)) < 2000


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-labels")
    (root / "images").mkdir()
    photo = cv2.imencode(".jpeg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    for name in ("1_left", "1_right", "2_left", "2_right"):
        (root / "images" / f"{name}.jpeg").write_bytes(photo)
    return root


CELLS = st.sampled_from(["1_left", "1_right", "2_left", "2_right", "3_left", "0", "2", "4", "5", "-1", "2.0", "", "x", '"', "é"])


@FAST
@given(header=st.sampled_from(["image,level", "level,image", "image", "img,level", "image,level,extra"]),
       rows=st.lists(st.lists(CELLS, min_size=0, max_size=4), max_size=8),
       raw=st.binary(max_size=60))
def test_any_label_file_is_read_or_a_data_error(photo_folder, header, rows, raw):
    text = header + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    for content in (text.encode("utf-8"), raw):
        labels = photo_folder / "trainLabels.csv"
        labels.write_bytes(content)
        images_before = sorted(p.stat().st_mtime_ns for p in (photo_folder / "images").iterdir())
        try:
            manifest = read_manifest(DataConfig(root=photo_folder, format="kaggle")).table
            assert set(manifest["grade"]) <= {0, 1, 2, 3, 4}
        except (DataError, ConfigError) as exc:
            assert str(exc) and len(str(exc)) < 2000
        assert sorted(p.stat().st_mtime_ns for p in (photo_folder / "images").iterdir()) == images_before


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 3000) | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(["format", "task", "backbone", "input_size", "kind", "head", "drop_rate", "mean", "std",
                        "preprocess", "thresholds", "tta", "members", "paired_eyes", "outputs"])


@FAST
@given(changes=st.dictionaries(KEYS, JSON_VALUES, max_size=4), drop=st.lists(KEYS, max_size=3))
def test_any_bundle_manifest_is_valid_or_a_bundle_error(tmp_path_factory, changes, drop):
    good = {"format": 1, "task": "grade", "backbone": "test_resnet", "input_size": 64, "kind": "softmax5",
            "head": "linear", "drop_rate": 0.0, "mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2], "preprocess": {},
            "thresholds": {"any_dr": 0.5, "referable": 0.5}, "tta": ["orig"]}
    manifest = {k: v for k, v in {**good, **changes}.items() if k not in drop}
    folder = Path(tmp_path_factory.mktemp("bundle"))
    (folder / "bundle.json").write_text(json.dumps(manifest))
    try:
        read_bundle_manifest(folder)
    except BundleError as exc:
        assert str(folder) in str(exc) and "\n" not in str(exc)
