"""``MODEL_CARD.md``: the page every bundle folder carries, so that a bundle copied to another
machine explains itself: what the model is for and not for, what it was trained on, how a photo
is prepared, how well it did and on which eyes (95% CIs), what its thresholds mean, its known
limits, and which drgrader version and command made it.

:func:`build_model_card` is pure (bundle manifest + metrics + external evaluations -> Markdown)
and uses the report's words and number formats (:mod:`.document`), so the card and the report
print a figure the same way. The writers around it:

- :func:`write_bundle_card` (training, ``drgrader cv`` with the ensemble's out-of-fold figures,
  ``drgrader ensemble``) through :func:`write_model_card`: a rewritten card keeps the external
  entries the old one had.
- :func:`record_evaluation` (``drgrader evaluate --data``) through
  :func:`record_external_evaluation`: one dated entry under "External evaluations" naming the
  data set. Entries are keyed by data set (its folder and label file): the same data evaluated
  again replaces its entry, wherever the evaluation was written; every other entry stays. Only the card of the bundle changes, never bundle.json or the
  weights; a read-only bundle folder is left as it is, with a warning.

Files are written atomically (:func:`drgrader.io.atomic_write_text`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from drgrader.evaluation.training_overlap import unchecked_copies
from drgrader.grading import GRADES
from drgrader.io import atomic_write_text
from drgrader.reporting.document import (
    Alert,
    Note,
    Para,
)
from drgrader.reporting.model_card_about import (
    EXTERNAL_TITLE,
    card_date,
    card_name,
    count_in,
    intended_use_section,
    model_section,
    preprocessing_section,
    sources_text,
    training_data_section,
)
from drgrader.reporting.model_card_figures import (
    evaluation_blocks,
    limits_section,
    operating_points_section,
    performance_section,
    provenance_section,
)
from drgrader.reporting.render import _block_md, render_markdown
from drgrader.reporting.run_data import labelled_left_out, left_out_text, reading_warnings

log = logging.getLogger("drgrader")

CARD_FILE = "MODEL_CARD.md"
NO_EXTERNAL = ("None yet. `drgrader evaluate BUNDLE --data OTHER_DATA_SET` measures the model on a data set it "
               "never saw and adds the figures here.")
_BEGIN = "<!-- drgrader:external {key} -->"
_END = "<!-- /drgrader:external -->"
_ENTRY = re.compile(r"<!-- drgrader:external (\S+) -->\n.*?<!-- /drgrader:external -->\n?", re.S)
_MODEL = re.compile(r"<!-- drgrader:model (\w+) -->")


def model_id(bundle_dir: str | Path, manifest: dict) -> str:
    """What an external entry's figures are of: a digest of the bundle's weights (each member's, for
    an ensemble) and its thresholds; '' when bundle.json records no weights."""
    import hashlib
    import json

    from drgrader.inference.bundle_spec import read_manifest

    weights = [manifest.get("weights_sha256")]
    for member in manifest.get("members") or ():
        try:
            weights.append(read_manifest(Path(bundle_dir) / member).get("weights_sha256"))
        except (OSError, ValueError):
            weights.append(None)
    if not any(weights):
        return ""
    record = json.dumps([weights, manifest.get("thresholds"), manifest.get("paired_eyes")], sort_keys=True, default=str)
    return hashlib.sha256(record.encode()).hexdigest()[:16]


@dataclass
class ExternalEvaluation:
    """One ``drgrader evaluate --data`` result for the card: its ``metrics.json``, the folder it
    was written to, the command that made it, and the data set it measured (the entry's
    identity: one entry per data set; without it, the folder)."""

    metrics: dict
    folder: str
    command: str | None = None
    synthetic: bool = False
    data_set: str = ""
    model: str = ""  # the bundle's model it measured (:func:`model_id`)

    @property
    def key(self) -> str:
        return _key(self.data_set or self.folder)

    @property
    def keys_replaced(self) -> set[str]:
        """Its own key, and its folder's (the key of cards written before entries were per data set)."""
        return {self.key, _key(self.folder)}


def _key(text: str) -> str:
    return quote(str(text), safe="/._~:+=,@")  # no spaces or "-->" inside the marker


# ==================================================================== the whole card
def build_model_card(
    manifest: dict,
    metrics: dict | None = None,
    *,
    externals: Sequence[ExternalEvaluation] = (),
    command: str | None = None,
    synthetic: bool = False,
) -> str:
    """The card of a bundle as Markdown.

    ``manifest`` is its ``bundle.json``; ``metrics`` the ``metrics.json`` of the run (or cv)
    that made it, may be empty (the card then says what it lacks). ``command`` is the command
    line that made it; ``synthetic`` says the training photos were made by ``drgrader synth``.
    """
    metrics = metrics or {}
    version = manifest.get("drgrader_version") or (metrics.get("versions") or {}).get("drgrader") or "?"
    date = card_date(metrics.get("created"))
    what = f"ensemble of {len(manifest['members'])} models" if manifest.get("members") else "single model"
    meta = f"drgrader {version} · {date} · {what} · task `{manifest.get('task')}`"
    sections = [
        intended_use_section(manifest, metrics, synthetic),
        model_section(manifest, metrics),
        training_data_section(manifest, metrics),
        preprocessing_section(manifest),
        performance_section(manifest, metrics),
        operating_points_section(manifest, metrics),
        limits_section(manifest, metrics, synthetic),
        provenance_section(manifest, metrics, command, version, date),
    ]
    text = render_markdown(f"Model card: {card_name(manifest, metrics)}", meta, sections)
    return add_externals(text, externals)


# ============================================================ external evaluations
def engine_words(engine: str) -> str:
    """``torch:float32`` -> ``the float32 weights (PyTorch)``; ``onnx:model.int8.onnx`` -> ``the ONNX graph model.int8.onnx``."""
    kind, _, what = engine.partition(":")
    return f"the {what} weights (PyTorch)" if kind == "torch" else f"the ONNX graph {what}" if kind == "onnx" else engine


def external_entry(evaluation: ExternalEvaluation) -> str:
    """One dated entry of "External evaluations", between markers that name its folder."""
    metrics = evaluation.metrics
    where = (metrics.get("evaluated_on") or "").split(":", 1)[-1]
    name = Path(where).name or where or "external data"
    summary = (metrics.get("data") or {}).get("summary") or {}
    blocks: list = []
    if evaluation.synthetic:
        blocks.append(Note("Synthetic photos (drgrader synth): a software check, not a clinical figure."))
    facts = [f"data set `{where}`", f"evaluation folder `{evaluation.folder}`"]
    if summary:
        grades = ", ".join(f"{count_in(summary.get('grades') or {}, g)} × grade {g}" for g in GRADES)
        facts.append(f"{summary.get('images')} photos of {summary.get('patients')} patients ({grades}) from {sources_text(summary)}")
    skipped = (metrics.get("data") or {}).get("skipped")
    if left_out := labelled_left_out(skipped):  # probe 33 BV9: the counts were those graded, the labelled left out unsaid
        facts.append(f"{left_out} labelled photo(s) not counted ({left_out_text(skipped, labelled_only=True)})")
    if evaluation.command:
        facts.append(f"command `{evaluation.command}`")
    if engine := metrics.get("engine"):  # probe 58 CV5: an int8 bundle's float weights and its graph grade apart
        facts.append(f"graded by {engine_words(engine)}")
    version = (metrics.get("versions") or {}).get("drgrader")
    if version:
        facts.append(f"drgrader {version}")
    thresholds = ("Thresholds as fitted on the model's own validation data (above)." if metrics.get("thresholds", True)
                  else "Decisions by the default cut-points: the model has no fitted thresholds.")
    blocks.append(Para("; ".join(facts) + ". " + thresholds))
    if caveat := unchecked_copies(metrics.get("training_overlap")):  # probe 43 CG1
        blocks.append(Note(f"None of these photos is one the model was trained or tuned on, {caveat}."))
    test = metrics.get("test") or {}
    if test:
        blocks += evaluation_blocks(test, "this data set", summary)  # the whole data set is evaluated
        if said := list(test.get("warnings") or []) + reading_warnings(metrics):
            blocks.append(Alert("warning", "Automatic warnings", said))
    body = "\n\n".join(_block_md(b) for b in blocks)
    model = f"<!-- drgrader:model {evaluation.model} -->\n" if evaluation.model else ""
    return (_BEGIN.format(key=evaluation.key) + f"\n{model}### {name} ({card_date(metrics.get('created'))})\n\n"
            + body + "\n" + _END + "\n")


def _split_externals(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the card up to "External evaluations", its entries as (key, text))."""
    head, _, tail = text.partition(f"\n## {EXTERNAL_TITLE}\n")
    return head.rstrip("\n") + "\n", [(m.group(1), m.group(0).rstrip("\n") + "\n") for m in _ENTRY.finditer(tail)]


def _join(head: str, entries: list[tuple[str, str]]) -> str:
    body = "\n".join(entry for _, entry in entries) if entries else NO_EXTERNAL + "\n"
    return f"{head}\n## {EXTERNAL_TITLE}\n\n{body}"


_FOLDER = re.compile(r"evaluation folder `([^`\n]*)`")


def _entry_folder(entry: str) -> str | None:
    """The evaluation folder an entry names."""
    found = _FOLDER.search(entry)
    return found.group(1) if found else None


def add_externals(text: str, externals: Sequence[ExternalEvaluation]) -> str:
    """The card with these evaluations' entries: the entry of the same data set is replaced in
    place (and any other of it dropped), a new one appended; the other entries are kept, except
    one of another data set naming the same evaluation folder (that folder now holds this
    evaluation: the entry would point at another data set's figures)."""
    head, entries = _split_externals(text)
    for evaluation in externals:
        entry = (evaluation.key, external_entry(evaluation))
        stale = [e for e in entries if e[0] not in evaluation.keys_replaced and _entry_folder(e[1]) == evaluation.folder]
        for key, _ in stale:
            log.warning("model card: the entry of %s is dropped: its evaluation folder %s now holds the evaluation of %s",
                        unquote(key), evaluation.folder, evaluation.data_set or evaluation.folder)
        entries = [e for e in entries if e not in stale]
        same = [i for i, (key, _) in enumerate(entries) if key in evaluation.keys_replaced]
        if same:
            entries[same[0]] = entry
            entries = [e for i, e in enumerate(entries) if i not in same[1:]]
        else:
            entries.append(entry)
    return _join(head, entries)


def keep_externals(new: str, old: str | None, model: str = "") -> str:
    """``new`` card with the external entries of ``old`` that ``new`` lacks (a rewritten card
    never loses what ``evaluate`` added), but those measured on another ``model`` (:func:`model_id`:
    a resumed run's later best epoch, other thresholds), which would be figures of a model that is no
    longer there: left out, said."""
    if not old:
        return new
    head, entries = _split_externals(new)
    keys = {key for key, _ in entries}
    for key, entry in _split_externals(old)[1]:
        measured = _MODEL.search(entry)
        if key in keys:
            continue
        if model and measured and measured.group(1) != model:
            log.warning("model card: the external evaluation of %s is left out: it measured this bundle's earlier "
                        "weights or thresholds (its figures stay in %s); evaluate again to add it", unquote(key),
                        _entry_folder(entry) or "its evaluation folder")
            continue
        entries.append((key, entry))
    return _join(head, entries)


# ========================================================================= writers
@contextmanager
def _card_lock(bundle_dir: Path) -> Iterator[None]:
    """An exclusive lock on the bundle folder while its card is read and rewritten, so two
    evaluations finishing together do not drop each other's entry (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    import os

    fd = os.open(bundle_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_model_card(bundle_dir: str | Path, text: str, *, model: str = "") -> Path:
    """Write ``MODEL_CARD.md`` into the bundle atomically, keeping the external entries of the card
    it replaces that measured this ``model`` (:func:`keep_externals`)."""
    bundle_dir = Path(bundle_dir)
    file = bundle_dir / CARD_FILE
    with _card_lock(bundle_dir):
        old = file.read_text(encoding="utf-8") if file.is_file() else None
        atomic_write_text(file, keep_externals(text, old, model))
    return file


def record_external_evaluation(bundle_dir: str | Path, evaluation: ExternalEvaluation, *, base: str) -> Path:
    """Add (or replace) ``evaluation``'s entry in the bundle's card; ``base`` is the card to
    start from when the bundle has none yet (a bundle made before cards existed)."""
    bundle_dir = Path(bundle_dir)
    file = bundle_dir / CARD_FILE
    with _card_lock(bundle_dir):
        text = file.read_text(encoding="utf-8") if file.is_file() else base
        atomic_write_text(file, add_externals(text, [evaluation]))
    return file


def forget_evaluation_folder(bundle_dir: str | Path, folder: str | Path) -> None:
    """Drop the entries of the card of ``bundle_dir`` that name the evaluation ``folder`` (now
    holding another model's evaluation); a card that cannot be written gets a warning."""
    file = Path(bundle_dir) / CARD_FILE
    folder = str(Path(folder).resolve())
    try:
        with _card_lock(Path(bundle_dir)):
            if not file.is_file():
                return
            head, entries = _split_externals(file.read_text(encoding="utf-8"))
            kept = [e for e in entries if _entry_folder(e[1]) != folder]
            if len(kept) == len(entries):
                return
            atomic_write_text(file, _join(head, kept))
    except OSError as exc:
        log.warning("%s still names %s, which now holds another model's evaluation (%s)", file, folder, exc)
        return
    log.warning("model card %s: its entry for %s dropped (the folder now holds another model's evaluation)", file, folder)


def _synthetic(data_root) -> bool:
    from drgrader.synth import made_by_synth

    return made_by_synth(data_root)


def _a_member_synthetic(bundle_dir: Path, manifest: dict) -> bool:
    """Whether any model of an ensemble was trained on ``drgrader synth`` photos: the ensemble's
    card then warns as the member's does (probe 34 AX11: only the member's own card did)."""
    if not manifest.get("members"):
        return False
    from drgrader.inference.bundle import trained_on_synthetic
    from drgrader.inference.ensemble_members import single_models

    return any(trained_on_synthetic(leaf, leaf_manifest) for leaf, leaf_manifest in single_models(bundle_dir))


def write_bundle_card(bundle_dir: str | Path, metrics: dict, *, data_root=None, shown: Path | None = None) -> Path:
    """Build and write the card of a bundle just made (training, ``drgrader cv``, ``drgrader
    ensemble``) from its bundle.json and ``metrics``; ``data_root`` is the training data set;
    ``shown``: the folder ``bundle_dir`` becomes once renamed into place, the one the log names."""
    from datetime import datetime, timezone

    from drgrader.inference.bundle_spec import read_manifest
    from drgrader.runtime import command_line

    metrics = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **metrics}
    manifest = read_manifest(bundle_dir)
    synthetic = _synthetic(data_root) or _a_member_synthetic(Path(bundle_dir), manifest)
    text = build_model_card(manifest, metrics, command=command_line(), synthetic=synthetic)
    file = write_model_card(bundle_dir, text, model=model_id(bundle_dir, manifest))
    log.info("model card: %s", file if shown is None else shown / file.name)
    return file


def record_evaluation(bundle_dir: str | Path, eval_dir: str | Path, metrics: dict, *, run_dir=None, data_root=None,
                      data_set: str = "", card_dir: str | Path | None = None) -> Path | None:
    """``drgrader evaluate --data``: add the evaluation in ``eval_dir`` of ``data_set`` (what
    identifies the data: one entry each) to the card of the bundle it measured (only the card
    changes; a bundle without one gets one first, from its bundle.json and the run's metrics.json
    when the run folder is known). With ``card_dir`` (a built-in grader, which is package data),
    the bundle's card with the new entry is written there instead. A bundle folder that cannot be
    written (a shared, read-only model folder) keeps its card, with a warning: the figures are in
    eval_dir."""
    import json

    from drgrader.inference.bundle_spec import read_manifest
    from drgrader.runtime import command_line

    run_metrics = {}
    if run_dir is not None and (Path(run_dir) / "metrics.json").is_file():
        try:
            run_metrics = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # the card then says it has no held-out figures
            log.warning("model card: %s not read: %s", Path(run_dir) / "metrics.json", exc)
        if not isinstance(run_metrics, dict):
            run_metrics = {}
    manifest = read_manifest(bundle_dir)
    train_root = ((manifest.get("config") or {}).get("data") or {}).get("root")
    own_card = Path(bundle_dir) / CARD_FILE
    if card_dir is not None and own_card.is_file():
        base = own_card.read_text(encoding="utf-8")
    else:
        base = build_model_card(manifest, run_metrics, synthetic=_synthetic(train_root))
    evaluation = ExternalEvaluation(metrics, str(Path(eval_dir).resolve()), command_line(), _synthetic(data_root), data_set,
                                    model_id(bundle_dir, manifest))
    try:
        file = record_external_evaluation(card_dir if card_dir is not None else bundle_dir, evaluation, base=base)
    except OSError as exc:
        log.warning("%s not updated (%s); the figures are in %s", Path(bundle_dir) / CARD_FILE, exc, eval_dir)
        return None
    log.info("model card updated: %s", file)
    return file
