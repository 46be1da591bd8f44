"""Where a command may write: the one place that decides, before any work, that an output
will not replace something the command did not make.

Rules: an output never replaces one of the command's inputs; an output onto an existing
entry of another kind (a photo, a run folder, a bundle, a cv folder) is refused unless
``overwrite``; a default output that exists gets a fresh numbered name instead of being
replaced; names derived from inputs are unique even when the inputs' stems repeat.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pandas is not imported by this module: commands that never read a table start faster
    import pandas as pd

# The one list of photo extensions, in the order an id without one is looked up (data.manifest
# re-exports it): a folder, a label file, a predict list and --out all read a name alike.
# .jfif and .jpe are JPEG (Windows browsers save .jfif): graded in a folder, named 10_left.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm", ".jfif", ".jpe")
# Names that promise another table format, or compression: a plain comma-separated file under
# them is read wrongly (pandas opens p.csv.gz as gzip: BadGzipFile).
OTHER_TABLE_SUFFIXES = {".tsv", ".tab", ".xlsx", ".xls", ".ods", ".json", ".parquet", ".feather",
                        ".gz", ".bz2", ".xz", ".zip", ".zst"}


# A file name that is not UTF-8 (Latin-1 bytes from an old share or archive) reaches Python as
# a str with surrogate escapes. predict's own partial file keeps those bytes as they are (its
# resume finds the very file again); the CSVs people read spell them \xNN, so pandas, Excel and
# csv still read the whole file, and a list naming `M\xfcller_left.jpeg` finds the file again.
FILE_NAME_ERRORS = "surrogateescape"
_ESCAPED_BYTE = re.compile(r"\\x([0-9a-fA-F]{2})")


def csv_bytes(text: str) -> bytes:
    r"""A CSV's text as UTF-8; the bytes of a file name that are not UTF-8 spelled ``\xNN``."""
    return escape_name(text).encode("utf-8")


def escape_name(text: str) -> str:
    r"""``text`` with the stray bytes of a non-UTF-8 file name spelled ``\xNN`` (``M\xfcller``)."""
    return text.encode("utf-8", FILE_NAME_ERRORS).decode("utf-8", "backslashreplace")


def has_stray_bytes(text: str) -> bool:
    """Whether ``text`` is a file name that is not UTF-8 (it holds surrogate escapes)."""
    return escape_name(text) != text


def unescape_name(text: str) -> str:
    r"""The file name :func:`escape_name` spelled: ``\xNN`` back to the byte (as the system's
    file-name decoding would give it)."""
    raw = _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)) if int(m.group(1), 16) >= 0x80 else m.group(0), text)
    return raw.encode("utf-8", FILE_NAME_ERRORS).decode("utf-8", FILE_NAME_ERRORS)


# A cell a spreadsheet would run as a formula (OWASP's list: =, +, -, @, a tab or carriage return
# first) is written with an apostrophe before it, which Excel and LibreOffice show as text; so is
# a cell that already starts with one, so reading back removes exactly one (probe 38 BB10: a
# patient id `=1+1` was shown as 2, `=HYPERLINK(...)` as a link). A plain number is left alone.
_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r", "'")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _guarded(cell: object) -> object:
    if isinstance(cell, str) and cell.startswith(_FORMULA_FIRST) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _unguarded(cell: object) -> object:
    return cell[1:] if isinstance(cell, str) and cell.startswith("'") else cell


def table_csv(table: pd.DataFrame) -> str:
    """``table`` as CSV text (no index) that a spreadsheet opens without running any cell."""
    return table.assign(**{c: table[c].map(_guarded) for c in _text_columns(table)}).to_csv(index=False)


def read_back(table: pd.DataFrame) -> pd.DataFrame:
    """A table :func:`table_csv` wrote, as it was before: each guarded cell without its apostrophe."""
    return table.assign(**{c: table[c].map(_unguarded) for c in _text_columns(table)})


def _text_columns(table: pd.DataFrame) -> list:
    return [c for c in table.columns if table[c].dtype.kind == "O"]  # object, or pandas 3's str


class OutputError(ValueError):
    """An output that would destroy something; the message says what and how to proceed."""


def kind_of(path: Path) -> str | None:
    """What an existing entry is, in words (None when it does not exist)."""
    if not path.exists():
        return None
    if path.is_dir():
        if (path / "cv.json").is_file():
            return "a cross-validation folder"
        if _drgrader_json(path / "bundle.json", ("task",)):
            return "a model bundle"
        if (path / "bundle").is_dir() or (path / "checkpoints").is_dir():
            return "a run folder"
        if _drgrader_json(path / "metrics.json", ("evaluated_on", "versions")):  # not a user's (probe 39 CC3)
            return "an evaluation folder"
        return "a folder"
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return "a photo"
    return f"a {path.suffix.lstrip('.').upper() or 'plain'} file"


def _drgrader_json(file: Path, keys: tuple[str, ...]) -> bool:
    """A ``bundle.json`` or ``metrics.json`` drgrader wrote (a JSON object with one of ``keys``), not
    another tool's or a user's file of that common name (a FHIR Bundle export; probe 38 CB1)."""
    try:
        content = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and any(key in content for key in keys)


# What a bundle folder holds (members/: an ensemble's; any .onnx: the exported graphs).
BUNDLE_FILES = {"bundle.json", "model.safetensors", "MODEL_CARD.md", "training_photos.sha256", "held_out_photos.sha256",
                "members"}


def _not_bundle_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in BUNDLE_FILES and p.suffix != ".onnx")


def _resolved(path: Path) -> Path:
    """The absolute, link-free path; a symlink loop, a broken link or a name the system cannot
    take (a NUL byte) stays as given (absolute)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a loop, before Python 3.13
        return Path(path).absolute()


def lock_file(out: Path) -> Path:
    """``<out>.lock``, held by :func:`exclusive` while ``out`` is written."""
    return Path(out).with_name(Path(out).name + ".lock")


class OwnCsv(NamedTuple):
    """A CSV a command writes, known by its header as every version of drgrader wrote it:
    ``first`` the leading columns, in this order, ``rest`` columns every version wrote anywhere
    after them, and ``later`` those only some versions wrote. Two shared names (``path``,
    ``grade``) are not enough: a clinic's own grading sheet or decision log has them too; nor is
    drgrader's whole header with a column added (``signed_by``): that is the clinic's signed copy."""

    file: Path
    first: tuple[str, ...]
    rest: tuple[str, ...]
    later: tuple[str, ...] = ()


def claim_file(out: Path, *, inputs: Iterable[Path] = (), suffix: str = ".csv", overwrite: bool = False,
               beside: dict[str, Path] | None = None, own: dict[str, OwnCsv] | None = None) -> Path:
    """Check that the command may write the file ``out`` (its own kind: ``suffix``) and the files
    it writes beside it (``beside``: what each is, in words -> its path; the lock file is added
    here): none of them may be one of the ``inputs``. ``own``: the CSVs it writes (what each is
    -> :class:`OwnCsv`): an existing one whose header is not one the command writes is a file
    of the user's, replaced only with ``overwrite``."""
    if str(out) == "-":  # Unix's "standard output": a file named '-' (and '-_patients.csv') would be written
        raise OutputError("--out -: this command writes files, not to standard output; give a file name")
    out = Path(out)
    given = {_resolved(Path(item)): Path(item) for item in inputs}
    if _resolved(out) in given:
        raise OutputError(f"--out {out} is one of the inputs; choose another output file")
    for what, file in {**(beside or {}), "lock file": lock_file(out)}.items():
        if _resolved(file) in given:
            raise OutputError(f"--out {out} would write its {what} onto the input {given[_resolved(file)]}; "
                              "choose another --out")
        if file.is_dir():  # found only at the end of the work, as a raw OS error, before
            raise OutputError(f"--out {out} would write its {what} {file.name}, which is a folder; choose another --out")
    kind = kind_of(out)
    if kind is not None and out.is_dir():
        raise OutputError(f"--out {out} is {kind}; give a file name (e.g. {out / ('predictions' + suffix)})")
    example = out.with_name(out.name.removesuffix(out.suffix)).with_suffix(suffix)  # grades.csv.gz -> grades.csv
    if out.suffix.lower() in OTHER_TABLE_SUFFIXES:
        raise OutputError(f"--out {out}: this command writes plain comma-separated values, not {out.suffix}; "
                          f"give a {suffix} name (e.g. {example})")
    if kind is not None and out.suffix.lower() != suffix and not overwrite:
        raise OutputError(f"--out {out} is {kind}, not a {suffix} this command writes; use --overwrite to replace it")
    if out.suffix != suffix:  # 'r', 'r.txt', 'r.CSV' would write r_patients.csv: r.csv's patients file
        raise OutputError(f"--out {out}: give a name ending in {suffix} (e.g. {example}): the patients file beside it "
                          "is named after it")
    for what, (file, first, rest, later) in (own or {}).items():
        header = None if overwrite or not file.is_file() else csv_header(file)
        if header is not None and not (header[:len(first)] == list(first) and set(rest) <= set(header) <= {*first, *rest, *later}):
            shown = ", ".join(header[:6]) + (", ..." if len(header) > 6 else "")
            where = f"--out {out} exists" if file == out else f"--out {out} would replace {file}, which exists"
            raise OutputError(f"{where} and is not a {what} drgrader wrote (columns {shown}); "
                              "choose another --out, or --overwrite to replace it")
    return out


def csv_header(file: Path) -> list[str] | None:
    """The column names on a CSV's first line (None: an empty file, nothing to lose)."""
    with open(file, "rb") as fh:
        first = fh.readline(65536)
    if not first.strip():
        return None
    text = first.decode("utf-8", "replace").removeprefix("\ufeff")
    return [name.strip() for name in next(csv.reader([text]), [])]


def check_writable(out: Path) -> Path:
    """``out`` when this user can make it (or write in it): a read-only place is one line before
    any work, not an errno after it."""
    out = Path(out)
    folder = next((p for p in (out, *out.absolute().parents) if p.is_dir()), Path("/"))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: {folder} is read-only for this user; choose another --out")
    return out


def claim_dir(out: Path, *, inputs: Iterable[Path] = (), may_reuse: tuple[str, ...] = (), overwrite: bool | None = None,
              replaces: tuple[str, ...] = ()) -> Path:
    """Check that the command may write into the folder ``out``: it must not be, contain or lie
    inside an input, an existing one must be empty or of a kind in ``may_reuse`` (or, with
    ``overwrite``, of a kind in ``replaces``, the output's own: never a run, a data set or a folder
    of the user's; probe 37 CA5), and it must be writable. ``overwrite`` None: a command without
    that option, which the message then does not offer."""
    out = check_writable(Path(out))
    target = _resolved(out)
    for item in inputs:
        source = _resolved(Path(item))
        if target == source or source in target.parents:
            raise OutputError(f"--out {out} is inside the input {item}; choose a folder outside it")
    kind = kind_of(out)
    if overwrite and kind == "a model bundle" and kind in replaces and (
            holder := kind_of(_resolved(out).parent)) in ("a run folder", "a cross-validation folder"):
        # Its report, metrics and card describe this model (probe 38 CB10)
        raise OutputError(f"--out {out} is the bundle of {holder} ({out.parent}), which --overwrite never replaces: "
                          "choose another folder")
    if overwrite and kind == "a model bundle" and kind in replaces and (others := _not_bundle_files(out)):
        raise OutputError(f"--out {out} is a model bundle holding other files too ({', '.join(others[:3])}): --overwrite would "
                          "delete them; move them out, or choose another folder")
    if kind is None or kind in may_reuse or (overwrite and kind in replaces):
        return out
    if kind == "a folder" and not any(out.iterdir()):
        return out
    offer = " (or --overwrite)" if overwrite is False and kind in replaces else ""
    never = f", which --overwrite never replaces (it replaces {' or '.join(replaces)} only)" if overwrite and replaces else ""
    raise OutputError(f"--out {out} already exists and is {kind}{never}; choose another folder{offer}")


def fresh_name(path: Path) -> Path:
    """``path`` when free, else ``<stem>-2<suffix>``, ``-3``, ... (as run folders are named)."""
    path, n = Path(path), 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def unique_names(stems: Iterable[str]) -> list[str]:
    """The stems, with ``-2``, ``-3`` ... added to repeats, so no two outputs share a name."""
    taken: set[str] = set()
    names = []
    for stem in stems:
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}"
        taken.add(name)
        names.append(name)
    return names


# A file name holds at most 255 bytes (ext4, APFS, NTFS); io.atomic_path writes through
# ".<name>.<8 hex>.tmp" beside it, 15 bytes more.
MAX_NAME_BYTES = 255 - 15


def fitting_name(stem: str, suffix: str) -> str:
    """``stem + suffix``; a stem too long for one file name is cut and ends in ``~`` and 8 hex
    digits of the whole stem's digest, so two long stems cut alike still get two names."""
    name = stem + suffix
    if len(name.encode("utf-8", FILE_NAME_ERRORS)) <= MAX_NAME_BYTES:
        return name
    digest = "~" + hashlib.sha256(stem.encode("utf-8", FILE_NAME_ERRORS)).hexdigest()[:8]
    room = MAX_NAME_BYTES - len((digest + suffix).encode("utf-8"))
    cut = stem.encode("utf-8", FILE_NAME_ERRORS)[:room].decode("utf-8", "ignore")  # never half a character
    return cut + digest + suffix


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold ``<out>.lock`` while writing ``out``: a second command on the same output is refused
    at once, instead of failing (or mixing rows) after all its work."""
    lock = lock_file(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"another drgrader command is writing {out}; wait for it or choose another --out") from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
