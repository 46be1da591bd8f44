"""``evaluate RUN``'s check that the run's test split today is the one its bundle held out.

The bundle records the photos it was trained or tuned on (``training_photos.sha256``) and those
its run held out (``held_out_photos.sha256``), by their bytes. The run's ``split.csv`` is read
again at each evaluation: a photo the model learnt from now in test, or a held-out photo now in
train or validation, and the figures called "the held-out test split" are not what the run held
out. Both are refused, naming the photo and the likely cause.
"""

from __future__ import annotations

from pathlib import Path

NOT_ITS_RUN = ("`evaluate RUN` would present another run's model's figures as this run's held-out split (a bundle "
               "copied in?); evaluate the bundle on a data set with `drgrader evaluate BUNDLE --data DATA`")
SPLIT_EDITED = ("edited since training? restore the run's split.csv (the split the model was trained on), or train "
                "again on the new split")


def refuse_changed_split(bundle_dir: Path, run_dir: Path, rows, split: str, *, learnt) -> None:
    """The run's held-out photos (``rows``, of ``split``: ``test``, or ``val`` when the run's
    split.csv has no test photo) are those the bundle held out: none of those the bundle's own
    record says it trained or was tuned on, and none of its held-out photos now among the run's
    training or validation photos (``learnt``). Refused otherwise: a bundle copied into the run
    folder (probe 34 BX13), copies on two sides of the split (probe 58 CV1) or the run's
    split.csv edited since training (probe 59 CW2, CW5), each said as such."""
    from drgrader.evaluation.training_overlap import HELD_OUT_DIGESTS, recorded_digests

    digests = recorded_digests(bundle_dir)
    if digests is None:  # no record: nothing to compare
        return
    held = recorded_digests(bundle_dir, HELD_OUT_DIGESTS) or set()
    test = {str(p): _digest(p) for p in rows["path"]} if split == "test" else {}  # a val-only run: said already
    seen = [p for p, d in test.items() if d in digests]
    if seen:
        _refuse_learnt_in_test(bundle_dir, run_dir, seen, len(test), learnt=learnt,
                               own=any(d in held for d in test.values()))
    # probe 59 CW2: a held-out photo (not also trained on: a copy on both sides is CV1's) now in train or val
    gone = held - digests - set(test.values())
    moved = [(str(p), s) for p, s in zip(learnt["path"], learnt["split"]) if gone and _digest(p) in gone]
    if moved:
        raise _error(f"{run_dir / 'split.csv'} no longer puts {len(moved)} of the {len(held)} photos {bundle_dir} records "
                     f"as held out ({HELD_OUT_DIGESTS}) in test (e.g. {moved[0][0]}, now in {moved[0][1]}): its figures "
                     f"would leave them out of the run's held-out split; {SPLIT_EDITED}")


def _refuse_learnt_in_test(bundle_dir: Path, run_dir: Path, seen: list[str], of: int, *, learnt, own: bool) -> None:
    """Test photos the bundle was trained or tuned on: when each is a byte copy of one of the run's
    own training or validation photos (``learnt``), the split put copies on two sides (probe 58
    CV1); when the bundle's held-out record lists others of the test split (``own``), the run's
    split.csv was edited (probe 59 CW5); else another run's bundle."""
    from drgrader.data.image_files import identical_files
    from drgrader.evaluation.training_overlap import HELD_OUT_DIGESTS, TRAINING_DIGESTS

    mine = [str(p) for p in learnt["path"]]
    copies: dict[str, str] = {}  # a test photo -> its byte copy among the run's training or validation photos
    for group in identical_files([*seen, *mine]):
        if theirs := [mine[i - len(seen)] for i in group if i >= len(seen)]:
            copies.update({seen[i]: theirs[0] for i in group if i < len(seen)})
    if all(p in copies for p in seen):
        raise _error(f"{run_dir}'s test split holds {len(seen)} byte copies of its own training or validation photos "
                     f"(e.g. {seen[0]} = {copies[seen[0]]}): its split (split.csv) put copies on two sides, so its test "
                     "figures would count photos the model learnt from; remove the copies from the data set (or "
                     "put them on one side of the split file) and train again")
    if own:
        raise _error(f"{run_dir / 'split.csv'} puts {len(seen)} photos in test that {bundle_dir} was trained or tuned on "
                     f"(e.g. {seen[0]}; by {TRAINING_DIGESTS}, not in its {HELD_OUT_DIGESTS}): its test figures would "
                     f"count photos the model learnt from; {SPLIT_EDITED}")
    raise _error(f"{bundle_dir} was trained or tuned on {len(seen)} of the {of} photos of {run_dir}'s test "
                 f"split (e.g. {seen[0]}; by {TRAINING_DIGESTS}): {NOT_ITS_RUN}")


def _digest(path) -> str:
    from drgrader.evaluation.training_overlap import digest

    try:
        return digest(path)
    except OSError:  # an unreadable photo: the grading says so
        return ""


def _error(message: str):
    from drgrader.inference.bundle_spec import BundleError

    return BundleError(message)
