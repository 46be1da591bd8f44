"""An ensemble bundle's members against what it was made from, checked wherever one is opened.

``drgrader ensemble`` refuses a model given twice; this check refuses the same fault made by hand
afterwards (a member listed twice in ``bundle.json``, a member folder replaced by a copy of
another, or by another model): such an ensemble would average other models than its card names.
``make_ensemble`` records each member's weights digests in ``member_info`` (``weights_sha256``);
an ensemble made before that is checked for what it still shows (a folder listed twice, two
members with the same weights).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from drgrader.inference.bundle_spec import MANIFEST, BundleError, read_manifest
from drgrader.io import sha256_file

WEIGHTS_KEY = "weights_sha256"  # in member_info: the digests of the member's models, in order


def weights_digest(path: Path) -> str:
    """A digest of a single model's weights: its PyTorch weights when it has them, so an ONNX or
    int8 export of a bundle (which keeps them) is that bundle; else its ONNX graph."""
    file = next((f for f in (path / "model.safetensors", path / "model.onnx") if f.is_file()), None)
    return sha256_file(file) if file is not None else hashlib.sha256().hexdigest()  # no model: the empty digest


def single_models(path: Path) -> list[tuple[Path, dict]]:
    """The single models inside a bundle (folder, manifest): itself, or its members', nested
    ensembles opened (each checked by :func:`check_members`)."""
    manifest = read_manifest(path)
    if not manifest.get("members"):
        return [(path, manifest)]
    check_members(path, manifest)
    return [leaf for member in manifest["members"] for leaf in single_models(path / member)]


def check_members(path: Path, manifest: dict) -> None:
    """Refuse (BundleError naming ``path/bundle.json``) an ensemble whose members repeat a folder
    or a model, or whose members' weights are not those recorded when it was made."""
    file = path / MANIFEST
    folders: dict[Path, str] = {}
    seen: dict[str, str] = {}  # weights digest -> the member holding them
    info = manifest.get("member_info")
    for i, member in enumerate(manifest["members"]):
        parts = Path(member).parts
        if not parts or Path(member).is_absolute() or ".." in parts or parts == (".",):  # "." would open itself forever
            raise BundleError(f"{file} is inconsistent: member {member!r} is not a folder inside the ensemble")
        folder = (path / member).resolve()
        if folder in folders:  # `members/0-r1` and `./members/0-r1/` alike
            raise BundleError(f"{file} is inconsistent: {member} is the member {folders[folder]} listed again")
        folders[folder] = member
        digests = [weights_digest(leaf) for leaf, _ in single_models(path / member)]
        recorded = info[i].get(WEIGHTS_KEY) if isinstance(info, list) and i < len(info) and isinstance(info[i], dict) else None
        if recorded is not None and recorded != digests:
            raise BundleError(f"{file} is inconsistent: {member} does not hold the weights the ensemble was made from "
                              f"(member_info {WEIGHTS_KEY} {_short(recorded)}, its weights now {_short(digests)}): "
                              "it would average another model than its card names; make the ensemble again")
        for digest in digests:
            if digest in seen:
                raise BundleError(f"{file} is inconsistent: {member} has the same weights as {seen[digest]}: "
                                  "an ensemble's members must be different models")
            seen[digest] = member


def _short(digests: object) -> str:
    """Digests shortened for a one-line message."""
    return ", ".join(str(d)[:12] for d in digests) if isinstance(digests, list) else str(digests)[:12]
