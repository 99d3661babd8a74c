"""Small real git + DVC repositories for the remote tests, and helpers to compare their contents.

The tiny repo has the shape of the real one: `data/new` (tracked by `data/new.dvc`), a `train`
stage in `dvc.yaml` that turns it into `models/model.onnx` + `models/model.json` (the real model
contract, via tests/bot/tiny_model.py: one label per breed folder) and a `metrics.json`.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]

TRAIN_PY = """\
import json, sys
from pathlib import Path
from tests.bot.tiny_model import write_tiny_model

breeds = sorted(p.name for p in Path("data/new").iterdir() if p.is_dir())
photos = sorted(Path("data/new").glob("*/*.jpg"))
labels = [{"name": b, "display": b.title(), "wnid": None} for b in breeds]
write_tiny_model(Path("models"), labels=labels)
Path("metrics.json").write_text(json.dumps({"photos": len(photos), "breeds": len(breeds)}))
"""

DVC_YAML = """\
stages:
  train:
    cmd: python train.py
    deps: [data/new, train.py]
    outs: [models]
    metrics:
      - metrics.json:
          cache: false
"""


def sh(
    args: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess:
    """Run a command; on an unexpected failure, the assertion shows its output."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"{args} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def photo_bytes(seed: int) -> bytes:
    """A small, distinct, canonical (baseline RGB) JPEG."""
    img = Image.new("RGB", (64, 64), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    img.putpixel((seed % 64, (seed // 64) % 64), (255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def uid(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def add_photos(folder: Path, breed: str, seeds: range) -> list[str]:
    """Write `<breed>/<breed>_<uid>.jpg` photos into `folder`; returns their relative names."""
    names = []
    for seed in seeds:
        data = photo_bytes(seed)
        name = f"{breed}/{breed}_{uid(data)}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        names.append(name)
    return names


def file_hashes(root: Path, *parts: str) -> dict[str, str]:
    """relative path -> sha256 of every file under the given files/folders of `root`."""
    hashes = {}
    for part in parts:
        path = root / part
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            hashes[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return hashes


def make_tiny_repo(path: Path, env: dict[str, str]) -> Path:
    """git init + dvc init, data/new v1 (two breeds), `dvc repro`, one commit."""
    path.mkdir(parents=True, exist_ok=True)
    sh(["git", "init", "-q", "-b", "main"], path, env)
    sh(["dvc", "init", "-q"], path, env)
    (path / "train.py").write_text(TRAIN_PY)
    (path / "dvc.yaml").write_text(DVC_YAML)
    add_photos(path / "data/new", "beagle", range(0, 4))
    add_photos(path / "data/new", "pug", range(4, 8))
    sh(["dvc", "add", "-q", "data/new"], path, env)
    sh(["dvc", "repro", "-q"], path, env)
    sh(["git", "add", "."], path, env)
    sh(["git", "commit", "-q", "-m", "data v1"], path, env)
    return path
