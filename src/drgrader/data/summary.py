"""What is in a data set: grades per split, patients, eyes, image sizes, gradability and
files that are byte-for-byte duplicates (the same photograph under two names)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
from PIL import Image

from drgrader.data.dicom import header_or_none
from drgrader.data.image_files import identical_files
from drgrader.data.split import patients_across_splits
from drgrader.grading import GRADE_NAMES, GRADES

SPLIT_ORDER = ("train", "val", "test")


def _grade_counts(grades: pd.Series) -> dict[int, int]:
    counts = grades.value_counts()
    return {g: int(counts.get(g, 0)) for g in GRADES}


def _image_sizes(manifest: pd.DataFrame) -> dict:
    """Sizes from the file headers only (PIL opens lazily and does not decode pixels; a DICOM
    file's header is read as the photo's: probe 44 CH3, every DICOM photo was "unreadable")."""
    sizes: Counter[tuple[int, int]] = Counter()
    unreadable = []
    for image_id, path in zip(manifest["image_id"], manifest["path"]):
        try:
            if not Path(path).is_file():  # a FIFO would block the open
                raise OSError(f"not a regular file: {path}")
            if (header := header_or_none(path)) is not None:
                sizes[(header.width, header.height)] += 1
                continue
            with Image.open(path) as image:
                sizes[image.size] += 1
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable.append(image_id)
    return _size_figures(sizes, unreadable)


def _size_figures(sizes: Counter[tuple[int, int]], unreadable: list) -> dict:
    if not sizes:
        return {"most_common": [], "min": None, "max": None, "unreadable": unreadable}
    by_area = sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh))
    return {
        "most_common": [{"size": f"{w}x{h}", "count": n} for (w, h), n in sizes.most_common(5)],
        "min": "{}x{}".format(*by_area[0]),
        "max": "{}x{}".format(*by_area[-1]),
        "unreadable": unreadable,
    }


def _recorded_sizes(table: pd.DataFrame) -> dict:
    """``_image_sizes`` from the sizes the preprocessing cache recorded (``orig_width``,
    ``orig_height``; 0 for a photo it could not read)."""
    sizes: Counter[tuple[int, int]] = Counter()
    for w, h in zip(table["orig_width"], table["orig_height"]):
        if pd.notna(w) and pd.notna(h) and w > 0 and h > 0:
            sizes[(int(w), int(h))] += 1
    return _size_figures(sizes, [])


def _duplicates(manifest: pd.DataFrame, split: pd.Series | None) -> dict:
    """Groups of images whose files have identical bytes."""
    table = manifest[["image_id", "grade"]].reset_index(drop=True)
    if split is not None:
        table["split"] = split.reindex(manifest.index).to_numpy()
    groups = []
    for positions in identical_files(manifest["path"].astype(str).tolist()):
        group = table.iloc[positions].sort_values("image_id")
        entry = {"image_ids": group["image_id"].tolist(), "grades": group["grade"].astype(int).tolist()}
        if split is not None:
            entry["splits"] = group["split"].tolist()
        groups.append(entry)
    groups.sort(key=lambda g: g["image_ids"][0])
    return {
        "groups": groups,
        "images": sum(len(g["image_ids"]) for g in groups),
        "conflicting_grades": sum(len(set(g["grades"])) > 1 for g in groups),
        "crossing_splits": sum(len(set(g.get("splits", []))) > 1 for g in groups),
    }


def _as_bool(values: pd.Series) -> pd.Series:
    """gradable flags given as bools, 0/1 or "true"/"false" strings."""
    if values.dtype == bool:
        return values
    return values.astype(str).str.strip().str.lower().isin({"true", "1", "1.0", "yes"})


def _gradability(manifest: pd.DataFrame, quality: pd.DataFrame) -> dict:
    missing = [c for c in ("image_id", "gradable") if c not in quality.columns]
    if missing:
        raise ValueError(f"quality table lacks column(s) {missing}; found {list(quality.columns)}")
    quality = quality[quality["image_id"].isin(set(manifest["image_id"]))]
    gradable = _as_bool(quality["gradable"])
    reasons = quality.loc[~gradable, "quality_reason"] if "quality_reason" in quality else pd.Series(dtype=str)
    reasons = reasons.astype(str).replace("", "unspecified").value_counts()
    return {
        "assessed": int(len(quality)),
        "gradable": int(gradable.sum()),
        "ungradable": int((~gradable).sum()),
        "not_assessed": int(len(manifest) - quality["image_id"].nunique()),
        "reasons": {str(k): int(v) for k, v in reasons.items()},
    }


def summarize(
    manifest: pd.DataFrame,
    split: pd.Series | None = None,
    quality: pd.DataFrame | None = None,
    check_images: bool = True,
    *,
    skipped: dict[str, int] | None = None,
) -> dict:
    """Counts that describe a manifest (see module doc); plain types, ready for JSON.

    ``split`` defaults to the manifest's own ``split`` column when it has one. ``quality`` is a
    table with ``image_id, gradable, quality_reason``. ``check_images`` reads every file: the
    header for its size and the bytes for duplicate detection. ``skipped`` counts the rows the
    reader left out (``Manifest.skipped``).
    """
    if split is None and "split" in manifest.columns:
        split = manifest["split"]
    eyes = manifest["eye"].replace("", "unknown").value_counts()
    per_patient = manifest["patient_id"].value_counts().value_counts().sort_index()
    summary: dict = {
        "images": int(len(manifest)),
        "patients": int(manifest["patient_id"].nunique()),
        "sources": {str(k): int(v) for k, v in manifest["source"].value_counts().items()},
        "grades": _grade_counts(manifest["grade"]),
        "eyes": {e: int(eyes.get(e, 0)) for e in ("left", "right", "unknown")},
        "images_per_patient": {int(k): int(v) for k, v in per_patient.items()},
        "skipped": dict(skipped or {}),
    }
    if split is not None:
        split = split.reindex(manifest.index)
        names = [s for s in SPLIT_ORDER if (split == s).any()]
        names += sorted(set(split.dropna()) - set(names))
        summary["splits"] = {
            name: {
                "images": int((split == name).sum()),
                "patients": int(manifest.loc[split == name, "patient_id"].nunique()),
                "grades": _grade_counts(manifest.loc[split == name, "grade"]),
            }
            for name in names
        }
        summary["patients_across_splits"] = patients_across_splits(manifest, split)  # probe 58 CV8
    if quality is not None:
        summary["gradability"] = _gradability(manifest, quality)
    if check_images:
        summary["image_sizes"] = _image_sizes(manifest)
        summary["duplicates"] = _duplicates(manifest, split)
    elif {"orig_width", "orig_height"} <= set(manifest.columns):  # the cache's record: no file is read
        summary["image_sizes"] = _recorded_sizes(manifest)
    return summary


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _pct(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f}%)" if total else "0"


def format_summary(summary: dict) -> str:
    """The summary as Markdown tables a person can read."""
    lines = ["# Data summary", ""]
    sources = ", ".join(f"{k} ({v})" for k, v in summary["sources"].items())
    lines.append(f"{summary['images']} images of {summary['patients']} patients; source: {sources}.")
    skipped = {k: v for k, v in summary.get("skipped", {}).items() if v}
    if skipped:
        lines.append("Left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) + ".")

    splits = summary.get("splits", {})
    header = ["grade", "all"] + list(splits)
    rows = []
    for g in GRADES:
        row = [GRADE_NAMES[g], _pct(summary["grades"][g], summary["images"])]
        row += [_pct(s["grades"][g], s["images"]) for s in splits.values()]
        rows.append(row)
    rows.append(["images", summary["images"]] + [s["images"] for s in splits.values()])
    rows.append(["patients", summary["patients"]] + [s["patients"] for s in splits.values()])
    lines += ["", "## Grades", ""] + _table(header, rows)

    eyes = summary["eyes"]
    lines += ["", "## Eyes and patients", ""]
    lines += _table(["left", "right", "unknown"], [[eyes["left"], eyes["right"], eyes["unknown"]]])
    per_patient = ", ".join(f"{v} patients with {k} image{'s' if k != 1 else ''}"
                            for k, v in summary["images_per_patient"].items())
    lines += ["", f"Images per patient: {per_patient}."]

    if "image_sizes" in summary:
        sizes = summary["image_sizes"]
        lines += ["", "## Image sizes", ""]
        lines += _table(["size", "images"], [[s["size"], s["count"]] for s in sizes["most_common"]])
        lines += ["", f"Smallest {sizes['min']}, largest {sizes['max']}."]
        if sizes["unreadable"]:
            lines.append(f"Unreadable: {len(sizes['unreadable'])} ({', '.join(sizes['unreadable'][:5])}).")

    if "gradability" in summary:
        q = summary["gradability"]
        lines += ["", "## Gradability", ""]
        lines += _table(["gradable", "ungradable", "not assessed"],
                        [[q["gradable"], q["ungradable"], q["not_assessed"]]])
        if q["reasons"]:
            lines += [""] + _table(["reason", "images"], [[k, v] for k, v in q["reasons"].items()])

    if "duplicates" in summary:
        d = summary["duplicates"]
        lines += ["", "## Duplicate files (identical bytes)", ""]
        if not d["groups"]:
            lines.append("None.")
        else:
            lines.append(f"{len(d['groups'])} groups, {d['images']} images; {d['conflicting_grades']} "
                         f"groups with different grades, {d['crossing_splits']} crossing splits.")
            lines.append("")
            for g in d["groups"][:20]:
                where = f"; splits {', '.join(g['splits'])}" if "splits" in g else ""
                lines.append(f"- {', '.join(g['image_ids'])} (grades {', '.join(map(str, g['grades']))}{where})")
            if len(d["groups"]) > 20:
                lines.append(f"- ... {len(d['groups']) - 20} more groups")
    return "\n".join(lines) + "\n"
