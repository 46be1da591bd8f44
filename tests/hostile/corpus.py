"""A corpus of hostile inputs, generated: label files, configs, bundles, run folders and special
file-system entries (FIFO, broken link, link loop, a folder or an empty file where a file is
expected), each with the commands that could be given it.

A case builds a small world under one folder (``build_world``): a good data set in the Kaggle
layout (``data/``), an experiment config pointing at it (``exp.yaml``), a photo (``photo.jpeg``),
a copy of the tiny bundle (``bundle/``) and a run folder (``run/``); then it damages one part.
Commands are templates over that world; outputs go to a separate folder (``{out}``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from drgrader.synth import make_fundus

PATIENTS = 4  # 8 photos: enough for a train/val/test split, small enough to cache in a blink
HUGE = 300_000  # characters in a "huge" field (more than the csv module's field limit)


@lru_cache(maxsize=None)
def photo_bytes(grade: int, seed: int) -> bytes:
    rgb = make_fundus(grade, np.random.default_rng(seed), height=96)
    ok, data = cv2.imencode(".jpeg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return data.tobytes()


def label_rows() -> list[tuple[str, int]]:
    return [(f"{p}_{eye}", (p + (eye == "right")) % 5) for p in range(1, PATIENTS + 1) for eye in ("left", "right")]


GOOD_LABELS = "image,level\n" + "".join(f"{image},{grade}\n" for image, grade in label_rows())


def config_text(world: Path, out: Path) -> str:
    return (
        "name: hostile\n"
        f"out_dir: {out / 'runs'}\n"
        "data:\n"
        f"  root: {world / 'data'}\n"
        "  format: kaggle\n"
        "  image_size: 48\n"
        "  workers: 1\n"
        f"  cache_dir: {out / 'cache'}\n"
        "  split: {val: 0.25, test: 0.25}\n"
        "model: {backbone: test_resnet, pretrained: none}\n"
        "train: {epochs: 1, batch_size: 4}\n"
        "eval: {bootstrap: 5}\n"
    )


def build_world(world: Path, out: Path, bundle: Path, parts: set[str]) -> None:
    """The good inputs a case starts from: always the data set, the config and the photos;
    ``bundle`` and ``run`` (copies of the tiny bundle) only when in ``parts``."""
    images = world / "data" / "images"
    images.mkdir(parents=True)
    for i, (image, grade) in enumerate(label_rows()):
        (images / f"{image}.jpeg").write_bytes(photo_bytes(grade, i))
    (world / "data" / "trainLabels.csv").write_text(GOOD_LABELS)
    (world / "exp.yaml").write_text(config_text(world, out))
    (world / "photo.jpeg").write_bytes(photo_bytes(3, 99))
    (world / "photos").mkdir()
    (world / "photos" / "a.jpeg").write_bytes(photo_bytes(1, 98))
    if "bundle" in parts:
        shutil.copytree(bundle, world / "bundle")
    if "run" in parts:
        run = world / "run"
        shutil.copytree(bundle, run / "bundle")
        (run / "config.yaml").write_text(config_text(world, out))
        (run / "metrics.json").write_text(json.dumps({"run": "run", "evaluated_on": "test", "test": {}}))
        (run / "split.csv").write_text("image_id,patient_id,split\n" + "".join(
            f"{image},{image.split('_')[0]},{('train', 'val', 'test')[int(image.split('_')[0]) % 3]}\n" for image, _ in label_rows()))


# ------------------------------------------------------------------------- special entries
def make_special(path: Path, kind: str) -> None:
    """Replace ``path`` (a file or folder, or nothing) by a special entry of ``kind``."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "broken link":
        path.symlink_to(path.parent / "nowhere-at-all")
    elif kind == "link loop":
        path.symlink_to(path.name)  # points at itself
    elif kind == "folder":
        path.mkdir()
    elif kind == "empty file":
        path.write_bytes(b"")
    else:
        raise ValueError(kind)


SPECIAL_KINDS = ["fifo", "broken link", "link loop", "folder", "empty file"]


def fifos(folder: Path) -> list[Path]:
    """Every FIFO under ``folder`` (links not followed)."""
    found = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(top) / name
            if not path.is_symlink() and path.is_fifo():
                found.append(path)
    return found


def release_fifos(folder: Path) -> None:
    """Open every FIFO for writing without blocking and close it at once: a reader stuck in
    open() (a hang the test is reporting) then sees end-of-file and its thread can end."""
    for fifo in fifos(folder):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: nobody is reading it
            pass


# ------------------------------------------------------------------------------ damages
def write(relative: str, content: bytes | str) -> Callable[[Path], None]:
    def damage(world: Path) -> None:
        path = world / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return damage


def special(relative: str, kind: str) -> Callable[[Path], None]:
    return lambda world: make_special(world / relative, kind)


def remove(relative: str) -> Callable[[Path], None]:
    def damage(world: Path) -> None:
        path = world / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return damage


def truncate(relative: str, fraction: float) -> Callable[[Path], None]:
    def damage(world: Path) -> None:
        data = (world / relative).read_bytes()
        (world / relative).write_bytes(data[: int(len(data) * fraction)])
    return damage


def edit_json(relative: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(world: Path) -> None:
        value = json.loads((world / relative).read_text())
        changed = change(value)
        (world / relative).write_text(json.dumps(value if changed is None else changed))
    return damage


def junk(n: int, seed: int = 0, nul: bool = True) -> bytes:
    data = np.random.default_rng(seed).integers(0 if nul else 1, 256, n, dtype=np.uint8).tobytes()
    return data


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML where each anchor repeats the previous one ``width`` times: a few hundred bytes that
    stand for width**levels strings when expanded (the "billion laughs")."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- commands
# Each command a template: {data} {config} {photo} {photos} {bundle} {run} {out} {labels}.
COMMANDS: dict[str, list[str]] = {
    "data summary": ["data", "summary", "{config}"],
    "preprocess": ["preprocess", "{config}", "--workers", "1"],
    "train": ["train", "{config}", "--out", "{out}/train"],
    "cv": ["cv", "{config}", "--folds", "2", "--out", "{out}/cv"],
    "evaluate --data folder": ["evaluate", "{bundle}", "--data", "{data}", "--out", "{out}/eval", "--set", "eval.bootstrap=5"],
    "evaluate --data config": ["evaluate", "{bundle}", "--data", "{config}", "--out", "{out}/eval"],
    "evaluate run": ["evaluate", "{run}", "--out", "{out}/eval"],
    "predict photo": ["predict", "{bundle}", "{photo}", "--out", "{out}/p.csv"],
    "predict folder": ["predict", "{bundle}", "{photos}", "--out", "{out}/p.csv"],
    "predict list": ["predict", "{bundle}", "{labels}", "--out", "{out}/p.csv"],
    "predict onnx": ["predict", "{bundle}", "{photo}", "--backend", "onnx", "--out", "{out}/p.csv"],
    "explain photo": ["explain", "{bundle}", "{photo}", "--out", "{out}/explain"],
    "explain folder": ["explain", "{bundle}", "{photos}", "--out", "{out}/explain"],
    "export": ["export", "{bundle}", "--out", "{out}/exported"],
    "report": ["report", "{run}"],
    "serve": ["serve", "{bundle}", "--port", "7999"],
}

# The commands that read each part of the world.
TAKES = {
    "labels": ["data summary", "preprocess", "train", "cv", "evaluate --data folder", "predict list"],
    "config": ["data summary", "preprocess", "train", "cv", "evaluate --data config"],
    "image": ["data summary", "preprocess", "train", "evaluate --data folder"],
    "photo": ["predict photo", "explain photo"],
    "folder": ["predict folder", "explain folder"],
    "bundle": ["predict photo", "explain photo", "export", "evaluate --data folder", "serve"],
    "onnx": ["predict onnx"],
    "run": ["report", "evaluate run"],
    "metrics": ["report"],  # evaluate RUN does not read the run's metrics.json
}


@dataclass(frozen=True)
class Case:
    family: str  # label file, config, bundle, run folder, special file
    name: str
    part: str  # a key of TAKES
    damage: Callable[[Path], None]

    @property
    def id(self) -> str:
        return f"{self.family}: {self.name}"


LABELS = "data/trainLabels.csv"
BAD_GRADE_ROWS = {"grade 7": "7", "grade 'two'": "two", "grade 2.5": "2.5", "grade empty": ""}


def label_cases() -> list[Case]:
    cases = {f"{name}": GOOD_LABELS.replace("1_left,1\n", f"1_left,{grade}\n") for name, grade in BAD_GRADE_ROWS.items()}
    cases.update({
        "good (control)": GOOD_LABELS,
        "wrong columns": GOOD_LABELS.replace("image,level", "img,grade"),
        "header only": "image,level\n",
        "no header": GOOD_LABELS.split("\n", 1)[1],
        "BOM": "\ufeff" + GOOD_LABELS,
        "CRLF line ends": GOOD_LABELS.replace("\n", "\r\n"),
        "semicolons": GOOD_LABELS.replace(",", ";"),
        "tabs": GOOD_LABELS.replace(",", "\t"),
        "extra field in a row": GOOD_LABELS.replace("2_left,2\n", "2_left,2,oops\n"),
        "fewer fields in a row": GOOD_LABELS.replace("2_left,2\n", "2_left\n"),
        "duplicate image": GOOD_LABELS + "1_left,1\n",
        "image without a file": GOOD_LABELS + "99_left,0\n",
        "unbalanced quote": GOOD_LABELS.replace("2_left,2\n", '"2_left,2\n'),
        "huge image id": GOOD_LABELS + "x" * HUGE + ",0\n",
        "huge grade": GOOD_LABELS.replace("1_left,1\n", "1_left," + "9" * HUGE + "\n"),
        "path in image id": GOOD_LABELS + "../../../etc/passwd,0\n",
        "terminal escape in an id": GOOD_LABELS + "\x1b[31m9_left,0\n",
    })
    bytes_cases = {
        "empty file": b"",
        "binary junk": junk(4000),
        "binary junk without NUL": junk(4000, nul=False),
        "UTF-16": GOOD_LABELS.encode("utf-16"),
        "Latin-1 id": (GOOD_LABELS + "caf\xe9_left,0\n").encode("latin-1"),
    }
    out = [Case("label file", name, "labels", write(LABELS, text)) for name, text in cases.items()]
    out += [Case("label file", name, "labels", write(LABELS, data)) for name, data in bytes_cases.items()]
    return out


def config_cases() -> list[Case]:
    def with_line(line: str) -> Callable[[Path], None]:
        def damage(world: Path) -> None:
            path = world / "exp.yaml"
            path.write_text(path.read_text() + line)
        return damage

    def replace(old: str, new: str) -> Callable[[Path], None]:
        def damage(world: Path) -> None:
            path = world / "exp.yaml"
            path.write_text(path.read_text().replace(old, new))
        return damage

    texts: dict[str, Callable[[Path], None]] = {
        "not YAML": write("exp.yaml", "data: [unclosed\n  root: {x\n"),
        "tab indentation": write("exp.yaml", "data:\n\troot: x\n"),
        "a list": write("exp.yaml", "- data\n- model\n"),
        "a number": write("exp.yaml", "42\n"),
        "a string": write("exp.yaml", "just some words\n"),
        "empty file": write("exp.yaml", ""),
        "only a comment": write("exp.yaml", "# nothing here\n"),
        "section not a mapping": with_line("model: 5\n"),
        "epochs a word": replace("epochs: 1", "epochs: many"),
        "lr a list": replace("batch_size: 4", "batch_size: 4, lr: [1, 2]"),
        "epochs negative": replace("epochs: 1", "epochs: -3"),
        "image size huge": replace("image_size: 48", "image_size: 100000000"),
        "unknown section": with_line("trian: {epochs: 1}\n"),
        "unknown key": replace("epochs: 1", "epohcs: 1"),
        "data.root a file": replace("root: ", "root: /etc/hostname # "),
        "data.root missing": replace("root: ", "root: /nonexistent/data # "),
        "Latin-1": write("exp.yaml", "name: caf\xe9\n".encode("latin-1")),
        "UTF-16": write("exp.yaml", "name: x\n".encode("utf-16")),
        "binary junk": write("exp.yaml", junk(2000)),
        "huge name": write("exp.yaml", "name: " + "x" * HUGE + "\n"),
        "deeply nested": write("exp.yaml", "name: " + nested(5_000) + "\n"),
        "deeply nested mapping": write("exp.yaml", "name: " + nested(5_000, "{a: ", "}") + "\n"),
        "alias bomb": write("exp.yaml", alias_bomb() + "name: *a8\n"),
        "alias bomb in unknown key": write("exp.yaml", alias_bomb() + "bomb: *a8\n"),
        "alias bomb in a list field": replace("eval: {bootstrap: 5}", alias_bomb() + "eval: {tta: *a8}"),
        "false": write("exp.yaml", "false\n"),
        "python tag": write("exp.yaml", "name: !!python/object/apply:os.system ['echo hacked']\n"),
        "duplicate keys": with_line("name: second\n"),
    }
    return [Case("config", name, "config", damage) for name, damage in texts.items()]


def bundle_cases() -> list[Case]:
    manifest = "bundle/bundle.json"
    weights = "bundle/model.safetensors"
    damages: dict[str, Callable[[Path], None]] = {
        "good (control)": lambda world: None,
        "bundle.json missing": remove(manifest),
        "bundle.json empty": write(manifest, b""),
        "bundle.json truncated": truncate(manifest, 0.5),
        "bundle.json binary junk": write(manifest, junk(3000)),
        "bundle.json not UTF-8": write(manifest, '{"task": "caf\xe9"}'.encode("latin-1")),
        "bundle.json a list": write(manifest, "[1, 2, 3]"),
        "bundle.json deeply nested": write(manifest, nested(100_000)),
        "bundle.json huge string": edit_json(manifest, lambda m: m.update(backbone="x" * HUGE)),
        "bundle.json input_size 10^9": edit_json(manifest, lambda m: m.update(input_size=10**9)),
        "bundle.json NaN threshold": edit_json(manifest, lambda m: m.update(thresholds={"any_dr": float("nan"), "referable": 0.5})),
        "bundle.json members escape": edit_json(manifest, lambda m: m.update(members=["../../.."])),
        "bundle.json member missing": edit_json(manifest, lambda m: m.update(members=["nope"])),
        "bundle.json member is itself": edit_json(manifest, lambda m: m.update(members=["."])),
        "weights truncated": truncate(weights, 0.5),
        "weights empty": write(weights, b""),
        "weights binary junk": write(weights, junk(5000)),
        "weights huge header length": write(weights, (2**62).to_bytes(8, "little") + b"{}"),
        "weights missing": remove(weights),
        "garbage model.onnx beside good weights": write("bundle/model.onnx", junk(500)),
        "bundle folder empty": lambda world: (shutil.rmtree(world / "bundle"), (world / "bundle").mkdir()),
        "bundle is a photo": lambda world: (shutil.rmtree(world / "bundle"), (world / "bundle").write_bytes(photo_bytes(1, 5))),
    }
    out = [Case("bundle", name, "bundle", damage) for name, damage in damages.items()]
    onnx = {
        "garbage model.onnx": write("bundle/model.onnx", junk(500)),
        "empty model.onnx": write("bundle/model.onnx", b""),
        "model.onnx missing": lambda world: None,
    }
    out += [Case("bundle", name, "onnx", damage) for name, damage in onnx.items()]
    return out


def run_cases() -> list[Case]:
    damages: dict[str, Callable[[Path], None]] = {
        "metrics.json not JSON": write("run/metrics.json", "{not json"),
        "metrics.json a list": write("run/metrics.json", "[1, 2]"),
        "metrics.json binary junk": write("run/metrics.json", junk(2000)),
        "metrics.json deeply nested": write("run/metrics.json", nested(100_000)),
        "metrics.json missing": remove("run/metrics.json"),
        "metrics.json wrong types": write("run/metrics.json", json.dumps({"test": [1, 2], "data": "x", "evaluated_on": 5})),
        "config.yaml not YAML": write("run/config.yaml", "data: [unclosed\n"),
        "config.yaml binary junk": write("run/config.yaml", junk(2000)),
        "split.csv junk": write("run/split.csv", junk(2000)),
        "split.csv wrong columns": write("run/split.csv", "a,b\n1,2\n"),
        "bundle missing": remove("run/bundle"),
        "run folder empty": lambda world: (shutil.rmtree(world / "run"), (world / "run").mkdir()),
        "run is a file": lambda world: (shutil.rmtree(world / "run"), (world / "run").write_text("hello")),
    }
    return [Case("run folder", name, "metrics" if name.startswith("metrics.json") else "run", damage)
            for name, damage in damages.items()]


# Where a special entry can stand in for an expected file or folder, and what reads it there.
SPECIAL_PLACES = {
    "photo": ("photo.jpeg", "photo"),
    "photo in a folder": ("photos/b.jpeg", "folder"),  # beside photos/a.jpeg
    "image in a data set": ("data/images/1_left.jpeg", "image"),
    "image folder": ("data/images", "labels"),
    "label file": (LABELS, "labels"),
    "config": ("exp.yaml", "config"),
    "bundle": ("bundle", "bundle"),
    "bundle.json": ("bundle/bundle.json", "bundle"),
    "weights": ("bundle/model.safetensors", "bundle"),
    "model.onnx": ("bundle/model.onnx", "onnx"),
    "run": ("run", "run"),
    "metrics.json": ("run/metrics.json", "metrics"),
}


def special_cases() -> list[Case]:
    return [Case("special file", f"{place} is a {kind}", part, special(relative, kind))
            for place, (relative, part) in SPECIAL_PLACES.items() for kind in SPECIAL_KINDS]


# Ill-formed or out-of-range command-line values, each with the command it goes to.
ARGUMENTS: dict[str, list[str]] = {
    "predict --batch-size 0": ["predict", "{bundle}", "{photo}", "--batch-size", "0", "--out", "{out}/p.csv"],
    "predict --batch-size -3": ["predict", "{bundle}", "{photo}", "--batch-size", "-3", "--out", "{out}/p.csv"],
    "predict --batch-size x": ["predict", "{bundle}", "{photo}", "--batch-size", "x", "--out", "{out}/p.csv"],
    "predict --tta spin": ["predict", "{bundle}", "{photo}", "--tta", "spin", "--out", "{out}/p.csv"],
    "predict --out a folder": ["predict", "{bundle}", "{photo}", "--out", "{data}"],
    "predict --out the bundle": ["predict", "{bundle}", "{photo}", "--out", "{bundle}/bundle.json"],
    "predict input missing": ["predict", "{bundle}", "{out}/nothing.jpeg", "--out", "{out}/p.csv"],
    "predict input name too long": ["predict", "{bundle}", "{out}/" + "n" * 300 + ".jpeg", "--out", "{out}/p.csv"],
    "cv --folds 0": ["cv", "{config}", "--folds", "0", "--out", "{out}/cv"],
    "cv --folds 1": ["cv", "{config}", "--folds", "1", "--out", "{out}/cv"],
    "cv --folds 1000": ["cv", "{config}", "--folds", "1000", "--out", "{out}/cv"],
    "cv --fold 7 of 2": ["cv", "{config}", "--folds", "2", "--fold", "7", "--out", "{out}/cv"],
    "cv --fold -1": ["cv", "{config}", "--folds", "2", "--fold", "-1", "--out", "{out}/cv"],
    "cv --out the data set": ["cv", "{config}", "--folds", "2", "--out", "{data}"],
    "train --out the data set": ["train", "{config}", "--out", "{data}"],
    "train --out a photo": ["train", "{config}", "--out", "{photo}"],
    "train --resume a data set": ["train", "--resume", "{data}"],
    "train --num-nodes 0": ["train", "{config}", "--num-nodes", "0", "--out", "{out}/train"],
    "train --devices many": ["train", "{config}", "--devices", "many", "--out", "{out}/train"],
    "preprocess --workers 0": ["preprocess", "{config}", "--workers", "0"],
    "preprocess --workers -2": ["preprocess", "{config}", "--workers", "-2"],
    "--set epochs huge": ["train", "{config}", "--set", "train.epochs=" + "9" * 5000, "--out", "{out}/train"],
    "--set deeply nested": ["data", "summary", "{config}", "--set", "name=" + nested(5000)],
    "--set a section": ["data", "summary", "{config}", "--set", "data=5"],
    "evaluate --data a photo": ["evaluate", "{bundle}", "--data", "{photo}", "--out", "{out}/eval"],
    "evaluate --out the bundle": ["evaluate", "{bundle}", "--data", "{data}", "--out", "{bundle}"],
    "evaluate --out the data set": ["evaluate", "{bundle}", "--data", "{data}", "--out", "{data}"],
    "explain --out a photo": ["explain", "{bundle}", "{photo}", "--out", "{photo}"],
    "explain --out the photo folder": ["explain", "{bundle}", "{photos}", "--out", "{photos}"],
    "export --out the bundle": ["export", "{bundle}", "--out", "{bundle}"],
    "export --out a photo": ["export", "{bundle}", "--out", "{photo}"],
    "report of a data set": ["report", "{data}"],
    "report of a bundle": ["report", "{bundle}"],
    "serve --max-pending 0": ["serve", "{bundle}", "--max-pending", "0"],
    "serve --max-upload-mb -1": ["serve", "{bundle}", "--max-upload-mb", "-1"],
    "serve --read-timeout nan": ["serve", "{bundle}", "--read-timeout", "nan"],
    "serve --port 0": ["serve", "{bundle}", "--port", "0"],
}


# What a run may change among the inputs, because the user asked for exactly that.
MAY_CHANGE = {
    "export --out the bundle": {"bundle/bundle.json"},  # exporting in place adds model.onnx to the bundle
}


def argument_cases() -> list[Case]:
    return [Case("argument", name, name, lambda world: None) for name in ARGUMENTS]


def all_cases() -> list[Case]:
    return label_cases() + config_cases() + bundle_cases() + run_cases() + special_cases() + argument_cases()


def command_line(command: str) -> list[str]:
    """The argument template of a command of ``COMMANDS`` or ``ARGUMENTS``."""
    return COMMANDS.get(command) or ARGUMENTS[command]


def parts_of(command: str) -> set[str]:
    """The parts of the world a command's arguments name."""
    return {part for part in ("bundle", "run") if any(f"{{{part}}}" in arg for arg in command_line(command))}


def runs() -> list[tuple[Case, str]]:
    """(case, command) pairs: every case against every command that reads what it damages (an
    argument case is its own command)."""
    return [(case, command) for case in all_cases() for command in TAKES.get(case.part, [case.part])]
