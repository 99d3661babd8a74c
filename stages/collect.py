"""Bring new user photos from the feedback store into `data/new`, as a DVC-tracked data version.

`python -m stages.collect [--from URL] [--into data/new] [--push]`. The store (`file://...` or
`gs://bucket/prefix`, default $DOGGO_FEEDBACK_URL) holds `<breed>/<breed>_<uid>.jpg` plus a JSON
sidecar that the bot writes after the photo, so only photos with a sidecar are complete.

State: a ledger `data/new/.collected.jsonl`, one line per store object (name, version = GCS
generation or local size+mtime, uid, outcome, sidecar). It lives inside `data/new`, so each data
version carries exactly the list of what it contains, and a rolled-back `data/new` re-collects
what the rollback removed. A run lists the store, skips what the ledger has at the same version,
and imports the rest in batches: download into a temp folder, `stages.ingest.ingest` (the same
validation and canonical JPEGs as every other photo; atomic writes; idempotent by content uid),
then rewrite the ledger atomically. A kill between the two only means the batch is looked at
again (ingest counts it "unchanged"): nothing lost, nothing twice. Photos of users who sent
/forget (the bot leaves a tombstone with their salted hash) are removed from data/new, so the
next data version no longer has them. Then `dvc add data/new`.

Why not `dvc import-url --version-aware gs://... data/new` + `dvc update`: that copies the store
verbatim (sidecars, undecodable uploads, no breeds.json) instead of ingesting it; `dvc update`
mirrors the store, so photos cleaned out of the inbox would leave the data version; it needs
object versioning on the bucket (and has no file:// equivalent); and an interrupted update starts
over instead of resuming.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings

from bot.feedback import FORGOTTEN
from stages.gcs import StorageError, open_store, run_dvc
from stages.ingest import Settings, ingest
from stages.photos import atomic_write

log = logging.getLogger(__name__)

LEDGER = ".collected.jsonl"
BATCH = 32


class CollectSettings(BaseSettings):
    """Where the bot keeps users' photos (the same variable the bot reads)."""

    feedback_url: str = Field("file://./feedback", validation_alias="DOGGO_FEEDBACK_URL")


@dataclass(frozen=True)
class StoreItem:
    """A complete photo in the store: its name relative to the root, and its version."""

    name: str
    version: str


def version_of(info: dict[str, Any]) -> str:
    """GCS generation, else size + mtime (a rewritten object is looked at again)."""
    if info.get("generation"):
        return str(info["generation"])
    return f"{info.get('size')}-{info.get('mtime') or info.get('updated')}"


def list_store(fs: Any, root: str) -> list[StoreItem]:
    """Photos of the store that have their sidecar, sorted; dot-folders are bookkeeping."""
    found = fs.find(root, detail=True)
    rel = {PurePosixPath(p).relative_to(root).as_posix(): info for p, info in found.items()}
    items = []
    for name, info in rel.items():
        parts = name.split("/")
        if len(parts) != 2 or parts[0].startswith(".") or not name.endswith(".jpg"):
            continue
        if name[: -len(".jpg")] + ".json" in rel:
            items.append(StoreItem(name, version_of(info)))
    return sorted(items, key=lambda item: item.name)


def read_ledger(into: Path) -> dict[str, dict]:
    """name -> ledger entry; a torn last line (killed writer) is ignored."""
    path = into / LEDGER
    entries: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            entries[entry["object"]] = entry
    return entries


def write_ledger(into: Path, entries: dict[str, dict]) -> None:
    """Replace the ledger in one rename, sorted by object name."""
    lines = [json.dumps(entries[name], sort_keys=True) for name in sorted(entries)]
    atomic_write(into / LEDGER, ("\n".join(lines) + "\n").encode())


def outcomes(report: Any) -> dict[str, str]:
    """Per staged file name: why it was not imported (files absent here were imported)."""
    out = {p["file"]: p["reason"] for p in report.problems}
    out.update({c["file"]: "conflict" for c in report.conflicts})
    out.update({d["file"]: "duplicate" for d in report.duplicates})
    return out


def import_batch(
    fs: Any, root: str, batch: list[StoreItem], into: Path, settings: Settings
) -> dict:
    """Download one batch, ingest it, and return its ledger entries (the caller records them)."""
    paths = [f"{root}/{item.name}" for item in batch]
    sidecar_paths = [p[: -len(".jpg")] + ".json" for p in paths]
    blobs = fs.cat(paths + sidecar_paths)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="collect-") as staging:
        for item, path in zip(batch, paths, strict=True):
            dest = Path(staging, item.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(blobs[path])
        report = ingest(staging, into, settings)
    why = outcomes(report)
    entries = {}
    for item, sidecar in zip(batch, sidecar_paths, strict=True):
        try:
            meta = json.loads(blobs[sidecar])
        except ValueError:
            meta = None
        entries[item.name] = {
            "object": item.name,
            "version": item.version,
            "outcome": why.get(item.name, "imported"),
            "collected": now,
            "sidecar": meta,
        }
    return entries


def forgotten_chats(fs: Any, root: str) -> set[str]:
    """Salted chat hashes of users who sent /forget (the bot's tombstones in the store)."""
    return {PurePosixPath(path).stem for path in fs.glob(f"{root}/{FORGOTTEN}/*.json")}


def forget_collected(into: Path, ledger: dict[str, dict], chats: set[str]) -> int:
    """Delete from `into` the photos collected from `chats`; returns how many were removed.

    Only photos this ledger entry imported are deleted: a "duplicate" entry's file in `into`
    came from someone else. The entries are marked "forgotten" either way.
    """
    removed = 0
    for entry in ledger.values():
        chat = (entry.get("sidecar") or {}).get("chat")
        if chat not in chats or entry.get("outcome") == "forgotten":
            continue
        photo = into / entry["object"]
        if entry.get("outcome") == "imported" and photo.exists():
            photo.unlink()
            removed += 1
        entry["outcome"] = "forgotten"
    return removed


def collect(url: str, into: Path, settings: Settings, batch_size: int = BATCH) -> dict[str, int]:
    """Import every complete store photo the ledger does not have yet; returns outcome counts."""
    fs, root = open_store(url)
    ledger = read_ledger(into)
    items = list_store(fs, root)
    todo = [i for i in items if ledger.get(i.name, {}).get("version") != i.version]
    log.info("store %s: %d photos, %d new since the last collect", url, len(items), len(todo))
    counts: dict[str, int] = {}
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        entries = import_batch(fs, root, batch, into, settings)
        ledger.update(entries)
        write_ledger(into, ledger)
        for entry in entries.values():
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        log.info("collected %d/%d", start + len(batch), len(todo))
    removed = forget_collected(into, ledger, forgotten_chats(fs, root))
    if removed:
        write_ledger(into, ledger)
        counts["forgotten"] = removed
        log.info("removed %d collected photos of users who sent /forget", removed)
    return counts


def ingest_settings(params_file: Path = Path("params.yaml")) -> Settings:
    """params.yaml `ingest` (the same knobs as the ingest stage)."""
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    section = (params or {}).get("ingest") or {}
    defaults = Settings()
    return Settings(
        max_pixels=int(section.get("max_pixels", defaults.max_pixels)),
        jpeg_quality=int(section.get("jpeg_quality", defaults.jpeg_quality)),
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: collect, `dvc add` the folder, and optionally `dvc push` it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="url", help="store URL (default: $DOGGO_FEEDBACK_URL)")
    parser.add_argument("--into", type=Path, default=Path("data/new"))
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--no-dvc", action="store_true", help="skip `dvc add` (and push)")
    parser.add_argument("--push", action="store_true", help="`dvc push` the new data version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = args.url or CollectSettings().feedback_url
    try:
        counts = collect(url, args.into, ingest_settings(), args.batch_size)
        if not args.no_dvc:
            run_dvc("add", "-q", str(args.into))
            if args.push:
                run_dvc("push", "-q", f"{args.into}.dvc")
    except (StorageError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201 - CLI output
        return 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing new"
    print(f"collect {url} -> {args.into}: {summary}")  # noqa: T201 - CLI output
    if not args.no_dvc:
        print(f"commit {args.into}.dvc to make this a data version")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
