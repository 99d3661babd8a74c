"""The new-data store: photos users confirmed or corrected, with a JSON sidecar, behind fsspec.

Layout (what the ingest of data/new reads): `<breed>/<breed>_<uid>.jpg` plus the sidecar
`<breed>/<breed>_<uid>.json`; uid = first 16 hex of sha256 of the photo bytes. Book-keeping
lives in dot-folders that can never be a breed slug: `.salt`, `.consent/<chat hash>.json` and
`.forgotten/<chat hash>.json` (tombstones of /forget, so that `stages.collect` can remove the
photos of that user it had already brought into data/new).
A sidecar is written after its photo, so a sidecar always means a complete photo (local files
are also written atomically).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import fsspec
from fsspec.implementations.local import LocalFileSystem

from bot import breeds, imaging

logger = logging.getLogger(__name__)

_JPEG_MAGIC = b"\xff\xd8\xff"
SOURCE = "telegram"


FORGOTTEN = ".forgotten"  # tombstones of /forget, read by stages.collect


@dataclass(frozen=True)
class Sidecar:
    """What is kept next to each photo (no chat id: only its salted hash)."""

    breed: str
    chat: str
    model_version: str
    prediction: str
    confidence: float
    time: str
    source: str = SOURCE


def as_jpeg(data: bytes) -> bytes:
    """The photo as JPEG bytes: Telegram photos pass through, image documents are re-encoded."""
    if data.startswith(_JPEG_MAGIC):
        return data
    out = io.BytesIO()
    imaging.decode(data).save(out, format="JPEG", quality=95)
    return out.getvalue()


class FeedbackStore:
    """Keeps, counts and forgets users' photos under one fsspec URL (file://, gs://, memory://)."""

    def __init__(self, url: str, salt: str | None = None) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")
        self._salt = salt.encode() if salt else None

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def _write(self, path: str, data: bytes) -> None:
        """Atomic on local disk (temp file + rename); one object upload elsewhere."""
        if isinstance(self.fs, LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{secrets.token_hex(4)}"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def salt(self) -> bytes:
        """The hashing salt: from settings, else created once in the store."""
        if self._salt is None:
            path = self._path(".salt")
            if not self.fs.exists(path):
                self._write(path, secrets.token_hex(16).encode())
            self._salt = self.fs.cat_file(path).strip()
        return self._salt

    def chat_hash(self, chat_id: int) -> str:
        """Salted hash of a chat id: the same user maps to the same key, which reveals nothing."""
        return hmac.new(self.salt(), str(chat_id).encode(), hashlib.sha256).hexdigest()[:32]

    def keep(
        self,
        photo: bytes,
        breed: str,
        chat_id: int,
        model_version: str,
        prediction: str,
        confidence: float,
    ) -> str:
        """Store one photo + sidecar under `<breed>/`; returns the photo's path."""
        name = breeds.slug(breed)
        data = as_jpeg(photo)
        uid = imaging.content_id(data)
        stem = self._path(name, f"{name}_{uid}")
        sidecar = Sidecar(
            breed=name,
            chat=self.chat_hash(chat_id),
            model_version=model_version,
            prediction=prediction,
            confidence=round(float(confidence), 4),
            time=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._write(f"{stem}.jpg", data)
        self._write(f"{stem}.json", json.dumps(asdict(sidecar), indent=1).encode())
        logger.info("kept a photo of %s (%d bytes)", name, len(data))
        return f"{stem}.jpg"

    def sidecars(self) -> list[str]:
        """Paths of every sidecar in the store."""
        found = self.fs.glob(self._path("*", "*.json"))
        # book-keeping (.consent, .forgotten) is not photos' sidecars
        return sorted(p for p in found if not p.rsplit("/", 2)[-2].startswith("."))

    def forget(self, chat_id: int) -> int:
        """Delete every photo, sidecar and consent record of a chat; returns the photo count."""
        key = self.chat_hash(chat_id)
        removed = 0
        for sidecar in self.sidecars():
            try:
                meta = json.loads(self.fs.cat_file(sidecar))
            except (OSError, ValueError):
                continue
            if meta.get("chat") != key:
                continue
            photo = sidecar[: -len(".json")] + ".jpg"
            if self.fs.exists(photo):
                self.fs.rm_file(photo)
                removed += 1
            self.fs.rm_file(sidecar)
        consent = self._path(".consent", f"{key}.json")
        if self.fs.exists(consent):
            self.fs.rm_file(consent)
        # A tombstone (the salted hash only): `stages.collect` removes this user's photos that
        # were already collected into data/new before they could be deleted here.
        stamp = {"time": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(self._path(FORGOTTEN, f"{key}.json"), json.dumps(stamp).encode())
        logger.info("forgot %d photos of one user", removed)
        return removed

    def consent(self, chat_id: int) -> bool | None:
        """True/False once the user answered the consent question, None before."""
        path = self._path(".consent", f"{self.chat_hash(chat_id)}.json")
        if not self.fs.exists(path):
            return None
        return bool(json.loads(self.fs.cat_file(path)).get("consent"))

    def set_consent(self, chat_id: int, consent: bool) -> None:
        """Record the user's answer (kept until /forget)."""
        record = {"consent": consent, "time": datetime.now(UTC).isoformat(timespec="seconds")}
        path = self._path(".consent", f"{self.chat_hash(chat_id)}.json")
        self._write(path, json.dumps(record).encode())
