"""The int8 gate's figures in words (``drgrader export --int8``'s log and the model card): free of
ONNX Runtime, so the model card is written without it."""

from __future__ import annotations

import math


def measured(value: float | None) -> float | None:
    """A gate figure, or None when it cannot be measured (NaN: kappa or AUC undefined on the data)."""
    return None if value is None or math.isnan(value) else float(value)


def gate_figures_text(attempt: dict) -> str:
    """An int8 attempt's figures against the float graph, in words; a figure the validation photos
    cannot measure (one class: no referable AUC; one grade throughout: no kappa) is said to be so,
    never printed as nan."""
    n = attempt["photos"]
    words = [f"{attempt['agreement']:.1%} of {n} validation grades equal to float"]
    kappa = measured(attempt["kappa_float"]), measured(attempt["kappa_int8"])
    if None in kappa:
        words.append(f"kappa not measurable (the {n} validation photos and their predicted grades are all one grade)")
    else:
        words.append(f"kappa {kappa[0]:.3f} -> {kappa[1]:.3f}")
    auc = measured(attempt["auc_float"]), measured(attempt["auc_int8"])
    if None in auc:
        words.append(f"referable AUC not measurable (the {n} validation photos hold one class)")
    else:
        words.append(f"referable AUC {auc[0]:.3f} -> {auc[1]:.3f}")
    return ", ".join(words)


def unmeasured(attempt: dict) -> list[str]:
    """The gate's figures the validation photos could not measure (their bars were not checked)."""
    return [name for name, keys in (("kappa", ("kappa_float", "kappa_int8")), ("referable AUC", ("auc_float", "auc_int8")))
            if any(measured(attempt[k]) is None for k in keys)]


def kept_attempt(record: dict) -> dict:
    """The attempt whose graph the bundle kept: with ``--int8-anyway`` the nearest to the gate, not
    the last tried (probe 59 CW1: the card quoted the last one's figures under the kept one's name).
    A record from before ``kept`` was written: its last attempt, the one kept when it passed."""
    return record["attempts"][record.get("kept", -1)]


def recipe_choice(record: dict) -> str:
    """How the kept recipe was chosen, in words: the gate's validation photos both chose it (the
    first recipe of the ladder to pass on them) and checked it, so its figures are not an
    independent check."""
    n, tried = record["attempts"][-1]["photos"], len(record["attempts"])
    if not record.get("passed_gate"):
        return f"the nearest to the gate of {tried} recipes tried on the run's {n} validation photos"
    if tried == 1:
        return f"the first recipe tried, checked on the run's {n} validation photos"
    return (f"recipe {tried} of those tried, the first to pass on the run's {n} validation photos: "
            "the photos that checked it also chose it")


def speed_text(record: dict) -> str:
    """The kept int8 graph's speed against the float graph's, in words."""
    text = f"{record['speedup']:.2f}x the float images/s on the machine that exported it"
    return text + " (slower than the float graph)" if record["speedup"] < 1 else text
