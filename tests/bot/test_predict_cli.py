"""`python -m bot.predict`: JSON lines, the table, bad files, exit codes, and no torch import."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bot.predict import default_model_dir, main
from tests.bot.tiny_model import write_tiny_model
from tests.conftest import ROOT


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "model")


def save(path: Path, img: Image.Image, fmt: str, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kwargs)
    return path


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`x`height` (a decompression bomb, tiny on disk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.fixture()
def photos(tmp_path: Path) -> dict[str, Path]:
    """Good and bad photos; the good ones have a colour the tiny model maps to one breed."""
    d = tmp_path / "photos"
    noise = io.BytesIO()
    Image.effect_noise((160, 120), 60).convert("RGB").save(noise, "JPEG", quality=95)
    jpeg = noise.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    transparent_red = Image.new("RGBA", (50, 50), (255, 0, 0, 0))
    return {
        "red": save(d / "a_red.jpg", Image.new("RGB", (80, 60), (255, 0, 0)), "JPEG"),
        "corrupt": _write(d / "b_corrupt.jpg", jpeg[:200] + b"\x00" * 300),
        "truncated": _write(d / "c_truncated.jpg", jpeg[: len(jpeg) // 2]),
        "text": _write(d / "d_text.png", b"this is not a photo\n" * 10),
        "empty": _write(d / "e_empty.jpg", b""),
        "huge": _write(d / "f_huge.png", huge_png_header(10_000, 7_000)),
        "alpha": save(d / "g_alpha.png", transparent_red, "PNG"),
        "cmyk": save(d / "h_cmyk.jpg", Image.new("CMYK", (60, 60), (0, 255, 255, 0)), "JPEG"),
        "exif": save(d / "i_exif.jpg", Image.new("RGB", (90, 40), (0, 0, 255)), "JPEG", exif=exif),
    }


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:
    code = main([*args, "--json"])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines]


def test_bad_files_get_error_lines_and_the_rest_is_predicted(
    model_dir: Path, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, records = run_json(capsys, str(photos["red"].parent), "--model", str(model_dir))
    assert code == 0
    by_name = {Path(r["path"]).stem.split("_", 1)[1]: r for r in records}
    assert [Path(r["path"]).name for r in records] == sorted(p.name for p in photos.values())
    assert by_name["corrupt"]["error"] in ("corrupt", "truncated")
    assert by_name["truncated"]["error"] == "truncated"
    assert by_name["text"]["error"] == "not_an_image"
    assert by_name["empty"]["error"] == "empty"
    assert by_name["huge"]["error"] == "too_large"
    assert all(r["detail"] for r in records if "error" in r)
    # Good photos: the full JSON contract, breeds in probability order.
    red = by_name["red"]
    assert red.keys() == {"path", "breeds", "dog_probability", "verdict"}
    assert red["breeds"][0] == {
        "breed": "red_setter",
        "display": "Red setter",
        "wnid": "n02100877",
        "probability": pytest.approx(1.0, abs=1e-4),
    }
    assert red["verdict"] == "dog" and len(red["breeds"]) == 3
    assert by_name["cmyk"]["breeds"][0]["breed"] == "red_setter"
    assert by_name["exif"]["breeds"][0]["breed"] == "blue_heeler"
    assert {b["wnid"] for b in by_name["exif"]["breeds"]} == {"n02100877", None}
    # Transparent red is composited on white: no colour wins, so the model is unsure.
    assert by_name["alpha"]["verdict"] == "unsure"


def test_top_k_and_explicit_files(
    model_dir: Path, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(photos["exif"]), str(photos["red"]), "--top-k", "1", "--model", str(model_dir)]
    code, records = run_json(capsys, *args)
    assert code == 0
    assert [r["breeds"][0]["breed"] for r in records] == ["blue_heeler", "red_setter"]
    assert all(len(r["breeds"]) == 1 for r in records)


def test_table_output(
    model_dir: Path, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(photos["red"]), str(photos["text"]), "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "dog" in out[0] and "Red setter 100.0%" in out[0]
    assert "ERROR not_an_image" in out[1]


def test_exit_codes(
    model_dir: Path, photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(photos["text"]), str(photos["empty"]), "--model", str(model_dir)]) == 1
    assert main([str(tmp_path / "missing.jpg"), "--json", "--model", str(model_dir)]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["error"] == "not_found"
    assert main([str(photos["red"]), "--model", str(tmp_path / "no-model")]) == 2


def test_default_model_dir(tmp_path: Path) -> None:
    assert default_model_dir(tmp_path) == tmp_path / "models/baseline"
    write_tiny_model(tmp_path / "models")
    assert default_model_dir(tmp_path) == tmp_path / "models"


def test_bot_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, bot.predict, bot.predictor; "
        "bad = [m for m in sys.modules if m.startswith(('torch', 'lightning'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.slow
def test_real_photos_with_the_baseline_model(
    baseline_model_dir: Path,
    imagewoof_small: Path,
    not_dogs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real ImageWoof photos: the true breed is in the top 3 for most; non-dogs are rejected."""
    broken = tmp_path / "broken"
    broken.mkdir()
    first = sorted((imagewoof_small / "Images").rglob("*.JPEG"))[0].read_bytes()
    (broken / "half.jpg").write_bytes(first[: len(first) // 2])
    non_dogs = sorted(not_dogs.iterdir())[:40]
    args = [str(imagewoof_small / "Images"), str(broken), *map(str, non_dogs)]
    code, records = run_json(capsys, *args, "--model", str(baseline_model_dir))
    assert code == 0
    dogs, bad, others = records[:120], records[120], records[121:]
    assert bad["error"] == "truncated"
    hits = [
        Path(r["path"]).parent.name.split("-")[0] in {b["wnid"] for b in r["breeds"]} for r in dogs
    ]
    assert sum(hits) / len(hits) >= 0.8, f"true breed in top 3 for {sum(hits)}/{len(hits)}"
    assert sum(r["verdict"] != "not_a_dog" for r in dogs) >= 0.9 * len(dogs)
    assert sum(r["verdict"] == "not_a_dog" for r in others) >= 0.9 * len(others)
