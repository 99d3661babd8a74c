"""Ingest on tiny made-up photos: every bad kind, every layout, unsafe archives, re-runs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stages import ingest, sources
from stages.ingest import Settings

ROOT = Path(__file__).resolve().parents[2]
FAST = Settings(workers=2)


def jpeg(color=(200, 30, 30), size=(48, 32), mode="RGB", **save) -> bytes:
    """A small JPEG; the colour makes each one distinct."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def uid(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def stored(into: Path) -> list[str]:
    """Relative paths of every file under `into` (hidden ones included)."""
    return sorted(p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file())


def rotated_jpeg() -> bytes:
    """40 wide x 20 high, EXIF orientation 6: upright it is 20 wide x 40 high."""
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_bad_photos_are_reported_and_odd_modes_become_rgb(tmp_path: Path) -> None:
    good = jpeg()
    alpha = Image.new("RGBA", (30, 20), (255, 0, 0, 0))
    wide16 = Image.fromarray(np.full((20, 30), 65535, dtype=np.uint16))
    assert wide16.mode.startswith("I;16")
    files = {
        "beagle_good.jpg": good,
        "beagle_corrupt.png": _broken_png(),
        "beagle_badjpeg.jpg": _broken_jpeg(),
        "beagle_truncated.jpg": _noise_jpeg()[:1500],
        "beagle_empty.jpg": b"",
        "beagle_text.jpg": b"just some words, not a photo",
        "beagle_bomb.png": png(Image.new("1", (8000, 8000))),  # 64 Mpx > default 60 Mpx
        "beagle_ppm.ppm": _ppm(),
        "beagle_alpha.png": png(alpha),
        "beagle_cmyk.jpg": jpeg((0, 0, 0, 0), mode="CMYK"),
        "beagle_grey.jpg": jpeg(128, mode="L"),
        "beagle_sixteen.png": png(wide16),
        "beagle_palette.png": png(Image.new("RGB", (30, 20), (0, 128, 0)).convert("P")),
        "beagle_rotated.jpg": rotated_jpeg(),
        "beagle_progressive.jpg": jpeg((9, 9, 9), progressive=True),
    }
    source = tmp_path / "flat"
    for name, data in files.items():
        write(source / name, data)
    into = tmp_path / "out"
    report = ingest.ingest(str(source), into, FAST)

    reasons = {Path(p["file"]).stem.split("_")[1]: p["reason"] for p in report.problems}
    assert reasons == {
        "corrupt": "corrupt",
        "badjpeg": "corrupt",
        "truncated": "truncated",
        "empty": "empty",
        "text": "not_an_image",
        "bomb": "too_large",
        "ppm": "unsupported_format",
    }
    assert report.counts["imported"] == 8 and report.counts["copied"] == 1
    # The baseline RGB JPEG is stored byte-for-byte; everything else was re-encoded.
    assert (into / "beagle" / f"beagle_{uid(good)}.jpg").read_bytes() == good
    outputs = {
        stem: into / "beagle" / f"beagle_{uid(files[f'beagle_{stem}' + ext])}.jpg"
        for stem, ext in [
            ("alpha", ".png"),
            ("cmyk", ".jpg"),
            ("grey", ".jpg"),
            ("sixteen", ".png"),
            ("palette", ".png"),
            ("rotated", ".jpg"),
            ("progressive", ".jpg"),
        ]
    }
    for path in outputs.values():
        img = Image.open(path)
        assert (img.format, img.mode, img.info.get("progressive")) == ("JPEG", "RGB", None)
    assert Image.open(outputs["rotated"]).size == (20, 40)
    assert Image.open(outputs["rotated"]).getexif().get(0x0112) is None
    assert min(Image.open(outputs["alpha"]).getpixel((5, 5))) > 245  # transparent -> white
    assert min(Image.open(outputs["sixteen"]).getpixel((5, 5))) > 245  # 16-bit white stays white
    assert json.loads((into / "breeds.json").read_text()) == {
        "beagle": {"display": "Beagle", "wnid": "n02088364"}
    }


def _noise_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _broken_png() -> bytes:
    """A PNG whose compressed pixel data is zeroed half-way: the zlib stream breaks."""
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = bytearray(png(Image.fromarray(pixels)))
    start = data.index(b"IDAT") + 20
    data[start : start + 40] = bytes(40)
    return bytes(data)


def _broken_jpeg() -> bytes:
    """A JPEG whose frame marker says a coding (lossless SOF15) that the decoder cannot read."""
    data = _noise_jpeg()
    return data[:2] + data[2:].replace(b"\xff\xc0", b"\xff\xcf")


def _ppm() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PPM")
    return buffer.getvalue()


def test_pixel_limit_comes_from_the_settings(tmp_path: Path) -> None:
    write(tmp_path / "src" / "pug_1.jpg", jpeg(size=(100, 100)))
    report = ingest.ingest(str(tmp_path / "src"), tmp_path / "out", Settings(max_pixels=5000))
    assert report.counts["too_large"] == 1 and not report.counts["imported"]
    assert stored(tmp_path / "out") == ["breeds.json"] and not (tmp_path / "out" / "pug").exists()


def test_huge_files_are_refused_unread(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1000)
    write(tmp_path / "src" / "pug" / "big.jpg", _noise_jpeg())
    write(tmp_path / "src" / "pug" / "small.jpg", jpeg(size=(8, 8)))
    with tarfile.open(tmp_path / "src.tar", "w") as tar:
        tar.add(tmp_path / "src" / "pug", arcname="pug")
    for source in (tmp_path / "src", tmp_path / "src.tar"):
        report = ingest.ingest(str(source), tmp_path / "out", FAST)
        assert [p["reason"] for p in report.problems] == ["too_large"]


def _stanford(root: Path) -> dict[str, bytes]:
    photos = {
        "Images/n02085620-Chihuahua/n02085620_1.jpg": jpeg((1, 1, 1)),
        "Images/n02085620-Chihuahua/n02085620_2.jpg": jpeg((2, 2, 2)),
        "Images/n02105641-Old_English_sheepdog/n02105641_7.jpg": jpeg((3, 3, 3)),
    }
    for name, data in photos.items():
        write(root / name, data)
    return photos


STANFORD_BREEDS = {
    "chihuahua": {"display": "Chihuahua", "wnid": "n02085620"},
    "old_english_sheepdog": {"display": "Old English sheepdog", "wnid": "n02105641"},
}


@pytest.mark.parametrize("layout", ["tar", "extracted", "breed-folders"])
def test_stanford_layouts(tmp_path: Path, layout: str) -> None:
    photos = _stanford(tmp_path / "stanford")
    source = tmp_path / "stanford"
    if layout == "tar":
        source = tmp_path / "images.tar"
        with tarfile.open(source, "w") as tar:
            tar.add(tmp_path / "stanford" / "Images", arcname="Images")
    elif layout == "breed-folders":
        source = tmp_path / "stanford" / "Images"
    into = tmp_path / "out"
    report = ingest.ingest(str(source), into, FAST)
    assert report.kind == {"tar": "tar", "extracted": "stanford"}.get(layout, "breed-folders")
    assert report.counts["imported"] == 3
    expected = sorted(
        f"{breed}/{breed}_{uid(data)}.jpg"
        for name, data in photos.items()
        for breed in ["chihuahua" if "Chihuahua" in name else "old_english_sheepdog"]
    )
    assert stored(into) == sorted([*expected, "breeds.json"])
    assert json.loads((into / "breeds.json").read_text()) == STANFORD_BREEDS


def test_flat_and_named_folders_get_wnids_from_the_imagenet_table(tmp_path: Path) -> None:
    source = tmp_path / "src"
    write(source / "golden_retriever_a1b2.jpg", jpeg((5, 5, 5)))
    write(source / "n02085620_10074.jpg", jpeg((6, 6, 6)))  # Stanford file name, flat
    write(source / "Golden retriever" / "x.jpg", jpeg((7, 7, 7)))  # same breed, other spelling
    write(source / "Mutt" / "y.jpg", jpeg((8, 8, 8)))  # not an ImageNet class: no wnid
    write(source / "noname.jpg", jpeg((9, 9, 9)))
    into = tmp_path / "out"
    report = ingest.ingest(str(source), into, FAST)
    assert report.kind == "mixed"
    assert report.counts["imported"] == 4 and report.counts["bad_name"] == 1
    assert json.loads((into / "breeds.json").read_text()) == {
        "chihuahua": {"display": "Chihuahua", "wnid": "n02085620"},
        "golden_retriever": {"display": "Golden retriever", "wnid": "n02099601"},
        "mutt": {"display": "Mutt", "wnid": None},
    }
    assert len(list((into / "golden_retriever").glob("golden_retriever_*.jpg"))) == 2


def test_unsafe_tar_members_are_refused(tmp_path: Path) -> None:
    good = jpeg((10, 10, 10))
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:

        def add(name: str, data: bytes = good, **attrs) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)

        add("Images/n02085620-Chihuahua/ok.jpg")
        add("../escape_1.jpg", jpeg((11, 11, 11)))
        add("Images/n02085620-Chihuahua/../../../up_2.jpg", jpeg((12, 12, 12)))
        add("/etc/absolute_3.jpg", jpeg((13, 13, 13)))
        add("Images/n02085620-Chihuahua/sym.jpg", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("Images/n02085620-Chihuahua/hard.jpg", b"", type=tarfile.LNKTYPE, linkname="ok.jpg")
        add("Images/n02085620-Chihuahua/fifo.jpg", b"", type=tarfile.FIFOTYPE)
    into = tmp_path / "work" / "out"
    report = ingest.ingest(str(archive), into, FAST)
    refused = {p["file"]: p["reason"] for p in report.problems}
    assert refused == {
        "../escape_1.jpg": "path_traversal",
        "Images/n02085620-Chihuahua/../../../up_2.jpg": "path_traversal",
        "/etc/absolute_3.jpg": "absolute_path",
        "Images/n02085620-Chihuahua/sym.jpg": "link",
        "Images/n02085620-Chihuahua/hard.jpg": "link",
        "Images/n02085620-Chihuahua/fifo.jpg": "special_file",
    }
    assert stored(into) == ["breeds.json", f"chihuahua/chihuahua_{uid(good)}.jpg"]
    assert stored(tmp_path / "work") == [
        "out/breeds.json",
        f"out/chihuahua/chihuahua_{uid(good)}.jpg",
    ]


def test_symlinks_in_folders_are_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "secret.jpg", jpeg((20, 20, 20)))
    source = tmp_path / "src"
    write(source / "pug" / "real.jpg", jpeg((21, 21, 21)))
    (source / "pug" / "link.jpg").symlink_to(outside)
    (source / "linked_dir").symlink_to(tmp_path)
    report = ingest.ingest(str(source), tmp_path / "out", FAST)
    assert report.counts["imported"] == 1 and report.counts["link"] == 2


def test_duplicates_once_and_conflicts_keep_the_first(tmp_path: Path) -> None:
    same, other = jpeg((30, 30, 30)), jpeg((31, 31, 31))
    source = tmp_path / "src"
    write(source / "beagle" / "a.jpg", same)
    write(source / "beagle" / "b.jpg", same)  # duplicate
    write(source / "samoyed" / "c.jpg", same)  # conflict: beagle came first
    write(source / "samoyed" / "d.jpg", other)
    into = tmp_path / "out"
    report = ingest.ingest(str(source), into, FAST)
    assert dict(report.counts) == {"imported": 2, "copied": 2, "duplicate": 1, "conflict": 1}
    assert report.duplicates == [{"file": "beagle/b.jpg", "same_as": "beagle/a.jpg"}]
    assert report.conflicts[0]["file"] == "samoyed/c.jpg"
    assert report.conflicts[0]["kept_breed"] == "beagle"
    assert stored(into) == sorted(
        ["breeds.json", f"beagle/beagle_{uid(same)}.jpg", f"samoyed/samoyed_{uid(other)}.jpg"]
    )
    # A later source that files the same photo under another breed: the stored copy stays.
    write(tmp_path / "later" / "pug" / "e.jpg", same)
    later = ingest.ingest(str(tmp_path / "later"), into, FAST)
    assert later.counts["conflict"] == 1 and not (into / "pug").exists()


def test_rerun_adds_nothing_and_touches_nothing(tmp_path: Path) -> None:
    photos = _stanford(tmp_path / "src")
    into = tmp_path / "out"
    ingest.ingest(str(tmp_path / "src"), into, FAST)
    before = {p: p.stat().st_mtime_ns for p in into.rglob("*.jpg")}
    again = ingest.ingest(str(tmp_path / "src"), into, FAST)
    assert dict(again.counts) == {"unchanged": len(photos)}
    assert {p: p.stat().st_mtime_ns for p in into.rglob("*.jpg")} == before


def test_leftovers_of_an_interrupted_run_are_cleaned(tmp_path: Path) -> None:
    photos = _stanford(tmp_path / "src")
    into = tmp_path / "out"
    # What a killed run leaves: one photo stored, a half-written temp file, no breeds.json.
    first = photos["Images/n02085620-Chihuahua/n02085620_1.jpg"]
    write(into / "chihuahua" / f"chihuahua_{uid(first)}.jpg", first)
    write(
        into
        / "chihuahua"
        / f".chihuahua_{uid(photos['Images/n02085620-Chihuahua/n02085620_2.jpg'])}.jpg.123.tmp",
        b"\xff\xd8half",
    )
    report = ingest.ingest(str(tmp_path / "src"), into, FAST)
    assert report.counts["unchanged"] == 1 and report.counts["imported"] == 2
    assert len(stored(into)) == 4 and not list(into.rglob(".*"))
    assert json.loads((into / "breeds.json").read_text()) == STANFORD_BREEDS


def test_killed_subprocess_then_rerun_has_every_photo_once(tmp_path: Path) -> None:
    source = tmp_path / "src"
    expected = set()
    for i in range(400):
        data = jpeg((i % 256, i // 256, 7), size=(160, 120), progressive=True)  # re-encoded: slower
        write(source / f"pug_{i}.jpg", data)
        expected.add(f"pug/pug_{uid(data)}.jpg")
    into = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "stages.ingest",
        str(source),
        "--into",
        str(into),
        "--report",
        str(tmp_path / "r.json"),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(into.glob("pug/*.jpg")):
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGKILL)  # the stage and its worker processes
    process.wait()
    partial = len(list(into.glob("pug/*.jpg")))
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    assert set(stored(into)) == expected | {"breeds.json"}
    for path in into.glob("pug/*.jpg"):
        Image.open(path).load()  # complete, decodable files only
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["unchanged"] == partial
    assert report["counts"]["imported"] == len(expected) - partial


def test_init_lays_down_the_committed_empty_version(tmp_path: Path) -> None:
    ingest.main(["--init", str(tmp_path / "new")])
    assert stored(tmp_path / "new") == ["breeds.json"]
    assert (tmp_path / "new" / "breeds.json").read_bytes() == b"{}\n"
    dvc_file = (ROOT / "data" / "new.dvc").read_text()
    assert "size: 3" in dvc_file and "nfiles: 1" in dvc_file


def test_cli_writes_the_report_and_reads_params(tmp_path: Path, monkeypatch, capsys) -> None:
    write(tmp_path / "src" / "pug_1.jpg", jpeg(size=(100, 100)))
    write(tmp_path / "src" / "pug_2.jpg", b"")
    (tmp_path / "params.yaml").write_text("ingest:\n  max_pixels: 20000\n  jpeg_quality: 80\n")
    monkeypatch.chdir(tmp_path)
    assert ingest.main(["src", "--into", "data/new"]) == 0
    report = json.loads((tmp_path / "reports" / "ingest-new.json").read_text())
    assert report["counts"] == {"copied": 1, "empty": 1, "imported": 1}
    assert "empty 1" in capsys.readouterr().out
    # The command line overrides params.yaml: 100x100 is over 5000 pixels.
    assert ingest.main(["src", "--into", "other", "--max-pixels", "5000"]) == 1


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves `payload`, honouring `Range: bytes=N-` the way real servers do."""

    payload = b""
    ranges: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        header = self.headers.get("Range")
        self.ranges.append(header or "")
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        body = self.payload[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_download_resumes_and_is_cached(tmp_path: Path, monkeypatch) -> None:
    _stanford(tmp_path / "stanford")
    archive = tmp_path / "images.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "stanford" / "Images", arcname="Images")
    _RangeHandler.payload, _RangeHandler.ranges = archive.read_bytes(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/aditya86/images.tar"
        cache = tmp_path / "cache"
        cache.mkdir()
        name = f"{hashlib.sha256(url.encode()).hexdigest()[:8]}-images.tar"
        (cache / f"{name}.part").write_bytes(_RangeHandler.payload[:5000])  # an interrupted try
        path = sources.download(url, cache)
        assert path.read_bytes() == _RangeHandler.payload
        assert _RangeHandler.ranges == ["bytes=5000-"]
        assert sources.download(url, cache) == path and len(_RangeHandler.ranges) == 1
        monkeypatch.setenv("DOGGO_CACHE_DIR", str(cache))
        report = ingest.ingest(url, tmp_path / "out", FAST)
        assert report.counts["imported"] == 3 and len(_RangeHandler.ranges) == 1
    finally:
        server.shutdown()
