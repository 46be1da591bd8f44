"""``drgrader ensemble``: several bundles as one, with the model card that explains it."""

from __future__ import annotations

from pathlib import Path

from drgrader.inference.ensemble import make_ensemble
from drgrader.reporting.model_card import write_bundle_card


def ensemble_command(bundles: list[str | Path], out: str | Path) -> Path:
    """Copy the member bundles into one ensemble bundle and write its MODEL_CARD.md (no figures of
    its own until ``drgrader evaluate`` measures it; each member's card travels in ``members/``)."""
    folder = make_ensemble(bundles, Path(out))
    write_bundle_card(folder, {})
    return folder
