"""Breed names, defined once: folder and file names in, a canonical slug and a display name out."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WNID = re.compile(r"^(n\d{8})[-_](.+)$")
_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class Breed:
    """One breed: `name` is the canonical slug used in paths and labels."""

    name: str
    display: str
    wnid: str | None = None


def split_wnid(raw: str) -> tuple[str | None, str]:
    """`n02085620-Chihuahua` -> (`n02085620`, `Chihuahua`); names without a wnid pass through."""
    match = _WNID.match(raw.strip())
    if match:
        return match.group(1), match.group(2)
    return None, raw.strip()


def slug(raw: str) -> str:
    """Canonical breed name: `n02085620-Old_English sheepdog` -> `old_english_sheepdog`."""
    _, name = split_wnid(raw)
    name = re.sub(r"\s+", "_", name.strip().lower())
    name = _NOT_SLUG.sub("", name)
    name = re.sub(r"_+", "_", name).strip("_-")
    if not name:
        raise ValueError(f"not a breed name: {raw!r}")
    return name


def display(raw: str) -> str:
    """Human name: `n02088364-beagle` -> `Beagle`; underscores become spaces."""
    _, name = split_wnid(raw)
    name = re.sub(r"[_\s]+", " ", name).strip()
    return name[:1].upper() + name[1:]


def parse(raw: str) -> Breed:
    """A folder name (with or without wnid) or a label as a `Breed`."""
    wnid, _ = split_wnid(raw)
    return Breed(name=slug(raw), display=display(raw), wnid=wnid)


def split_label_uid(stem: str) -> tuple[str, str]:
    """`golden_retriever_a1b2` -> (`golden_retriever`, `a1b2`): the uid follows the last `_`."""
    label, sep, uid = stem.rpartition("_")
    if not sep or not label or not uid:
        raise ValueError(f"expected label_uid, got {stem!r}")
    return label, uid
