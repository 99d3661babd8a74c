"""Where photos come from: images.tar (URL or file), the extracted Stanford layout, breed folders,
or a flat folder of `label_uid.jpg` files. Each yields `Entry`s in a deterministic order."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import posixpath
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

STANFORD_URL = "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar"
IMAGENET_DOGS = Path(__file__).with_name("imagenet_dogs.tsv")
_CHUNK = 1 << 20
# No photo is this big; a file over it (a video, a disk image) is refused before it is read.
MAX_FILE_BYTES = 256 << 20
# Tarfile's data filter decides against a destination; we never extract, but the rules are the same.
_FAKE_DEST = "/nonexistent-ingest-destination"


@dataclass(frozen=True)
class Entry:
    """One file of a source: `folder` is the breed folder name (None for flat `label_uid` files).

    `data` is None when the member was refused; then `refused` holds the reason.
    """

    name: str
    folder: str | None
    data: bytes | None = None
    refused: str | None = None
    detail: str = ""


def cache_dir() -> Path:
    """Downloads are kept here: $DOGGO_CACHE_DIR, else $XDG_CACHE_HOME/doggo-recog."""
    if os.environ.get("DOGGO_CACHE_DIR"):
        return Path(os.environ["DOGGO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "doggo-recog"


def download(url: str, cache: Path | None = None) -> Path:
    """Fetch `url` once into the cache; an interrupted download resumes with an HTTP Range."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    name = posixpath.basename(url.split("?")[0]) or "download"
    target = cache / f"{hashlib.sha256(url.encode()).hexdigest()[:8]}-{name}"
    if target.exists():
        log.info("using cached %s", target)
        return target
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is already complete
            os.replace(part, target)
            return target
        raise
    with response:
        if offset and response.status != 206:
            log.info("server ignored the Range request; downloading %s from the start", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, disable=None) as bar,
        ):
            out.truncate(offset)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise OSError(f"download of {url} stopped at {part.stat().st_size} of {total} bytes")
    os.replace(part, target)
    return target


def describe(path: Path) -> str:
    """The kind of source: tar, stanford (has Images/), breed-folders, flat or mixed."""
    if path.is_file():
        return "tar"
    if (path / "Images").is_dir():
        return "stanford"
    children = [p for p in path.iterdir() if not p.name.startswith(".")]
    has_dirs = any(p.is_dir() for p in children)
    has_files = any(p.is_file() for p in children)
    if has_dirs and has_files:
        return "mixed"
    return "breed-folders" if has_dirs else "flat"


def _folder_of(parts: list[str]) -> str | None:
    """Breed folder of a relative path: its parent, unless it sits at the top or in `Images/`."""
    if len(parts) < 2 or (len(parts) == 2 and parts[0].lower() == "images"):
        return None
    return parts[-2]


def _read(name: str, size: int, read: Callable[[], bytes]) -> Entry:
    folder = _folder_of(posixpath.normpath(name).lstrip("/").split("/"))
    if size > MAX_FILE_BYTES:
        return Entry(name, folder, refused="too_large", detail=f"file of {size} bytes")
    return Entry(name, folder, data=read())


def iter_folder(root: Path) -> Iterator[Entry]:
    """Every non-hidden file under `root`, sorted; links are refused, never followed."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(dirs + files):
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if name.startswith("."):
                continue
            if path.is_symlink():
                yield Entry(rel, _folder_of(rel.split("/")), refused="link", detail="symlink")
            elif name in files and path.is_file():
                yield _read(rel, path.stat().st_size, path.read_bytes)


def _tar_refusal(member: tarfile.TarInfo) -> tuple[str, str] | None:
    if member.issym() or member.islnk():
        return "link", f"link to {member.linkname}"
    if member.name.startswith(("/", "\\")):  # the data filter would quietly strip the slash
        return "absolute_path", f"{member.name} is an absolute path"
    try:
        tarfile.data_filter(member, _FAKE_DEST)
    except tarfile.AbsolutePathError as exc:
        return "absolute_path", str(exc)
    except tarfile.OutsideDestinationError as exc:
        return "path_traversal", str(exc)
    except tarfile.SpecialFileError as exc:
        return "special_file", str(exc)
    except tarfile.FilterError as exc:
        return "unsafe_member", str(exc)
    if not member.isfile():
        return "special_file", f"{member.name} is not a regular file"
    return None


def iter_tar(path: Path) -> Iterator[Entry]:
    """Members of a tar in archive order, read as a stream; unsafe members are refused."""
    with tarfile.open(path, "r|*") as tar:
        for member in tar:
            if member.isdir():
                continue
            name = member.name
            parts = posixpath.normpath(name).lstrip("/").split("/")
            if parts[-1].startswith("."):
                continue
            refusal = _tar_refusal(member)
            if refusal:
                yield Entry(name, _folder_of(parts), refused=refusal[0], detail=refusal[1])
                continue
            handle = tar.extractfile(member)
            yield _read(name, member.size, handle.read if handle else bytes)


def iter_source(path: Path) -> Iterator[Entry]:
    """Entries of a local source, whichever layout it has."""
    return iter_tar(path) if path.is_file() else iter_folder(path)


def resolve(source: str, cache: Path | None = None) -> Path:
    """A local path for `source`; URLs are downloaded (once) into the cache."""
    if source.startswith(("http://", "https://")):
        return download(source, cache)
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"no such source: {source}")
    if path.is_file() and not tarfile.is_tarfile(path):
        raise ValueError(f"{source} is a file but not a tar archive")
    return path


def imagenet_dogs() -> dict[str, str]:
    """The ImageNet dog classes of `imagenet_dogs.tsv`: {wnid: name}."""
    with IMAGENET_DOGS.open(newline="") as handle:
        return {row["wnid"]: row["name"] for row in csv.DictReader(handle, delimiter="\t")}
