"""Data versions are commits: v1 pushed, v2 (more photos, retrained) pushed, then v1 comes back
exactly - photos, model bytes, metrics - from the local cache and from the GCS remote alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot import breeds
from tests.conftest import require_shared_data
from tests.gcs.repos import add_photos, file_hashes, sh, uid
from tests.gcs.server import FakeGcs

pytestmark = pytest.mark.timeout(240)

VERSIONED = ("data/new", "models", "metrics.json")


def push_version(repo: Path, env: dict, message: str) -> str:
    """`dvc repro` + `dvc push` + commit; returns the commit."""
    sh(["dvc", "repro", "-q"], repo, env)
    sh(["dvc", "push", "-q"], repo, env)
    sh(["git", "add", "dvc.lock", "data/new.dvc", "metrics.json", ".dvc/config"], repo, env)
    sh(["git", "commit", "-q", "--allow-empty", "-m", message], repo, env)
    return sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


def test_v1_comes_back_exactly_after_v2(
    tiny_repo: Path, gcs: FakeGcs, bucket: str, env: dict, tmp_path: Path
) -> None:
    url = f"gs://{bucket}/dvc"
    sh(["python", "-m", "stages.remote", url, "--endpoint", gcs.url], tiny_repo, env)
    v1 = push_version(tiny_repo, env, "data v1 on GCS")
    v1_files = file_hashes(tiny_repo, *VERSIONED)

    add_photos(tiny_repo / "data/new", "papillon", range(50, 54))
    sh(["dvc", "add", "-q", "data/new"], tiny_repo, env)
    push_version(tiny_repo, env, "data v2: papillon photos, retrained")
    v2_files = file_hashes(tiny_repo, *VERSIONED)
    assert v2_files["models/model.onnx"] != v1_files["models/model.onnx"]
    assert v2_files["metrics.json"] != v1_files["metrics.json"]

    # Just the version files (+ the git-tracked metrics) and `dvc checkout`.
    sh(["git", "checkout", v1, "--", "dvc.lock", "data/new.dvc", "metrics.json"], tiny_repo, env)
    sh(["dvc", "checkout"], tiny_repo, env)
    assert file_hashes(tiny_repo, *VERSIONED) == v1_files  # the papillon photos are gone too
    assert "up to date" in sh(["dvc", "status"], tiny_repo, env).stdout
    metrics = sh(["dvc", "metrics", "diff", v1], tiny_repo, env).stdout
    assert "photos" not in metrics  # no difference to v1's metrics

    # From the remote alone: a fresh clone at v1 and at v2.
    for rev, expected in ((v1, v1_files), ("main", v2_files)):
        clone = tmp_path / f"clone-{rev[:7]}"
        sh(["git", "clone", "-q", str(tiny_repo), str(clone)], tmp_path, env)
        sh(["git", "checkout", "-q", rev], clone, env)
        sh(["python", "-m", "stages.remote", url, "--endpoint", gcs.url], clone, env)
        sh(["dvc", "pull", "-q"], clone, env)
        assert file_hashes(clone, *VERSIONED) == expected


REAL = ("data/new", "models/model.onnx", "models/model.json", "dvclive/metrics.json", "eval")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_model_round_trip_through_gcs(
    trained_repo: Path, gcs: FakeGcs, bucket: str, env: dict, tmp_path: Path
) -> None:
    """The real pipeline: v1 pushed; real photos added, `dvc repro`, pushed; v1 back exactly; a
    fresh clone at v1 pulls a model that recognises dogs without running anything."""
    repo = Path(shutil.copytree(trained_repo, tmp_path / "repo", symlinks=True))
    url = f"gs://{bucket}/dvc"
    sh(["python", "-m", "stages.remote", url, "--endpoint", gcs.url], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "data v1"], repo, env)
    v1 = sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    sh(["dvc", "push", "-q"], repo, env)
    v1_files = file_hashes(repo, *REAL)

    # v2: users' photos arrive in the feedback bucket as the bot writes them; collect + retrain.
    photos = []
    for folder in sorted(require_shared_data("imagewoof", "Images").iterdir())[:2]:
        breed = breeds.parse(folder.name).name
        for photo in sorted(folder.iterdir())[40:44]:  # trained_repo used the first 40
            data = photo.read_bytes()
            stem = f"inbox/{breed}/{breed}_{uid(data)}"
            gcs.upload(bucket, f"{stem}.jpg", data)
            gcs.upload(bucket, f"{stem}.json", json.dumps({"breed": breed}).encode())
            photos.append(photo)
    collect = ["python", "-m", "stages.collect", "--from", f"gs://{bucket}/inbox", "--push"]
    assert "imported 8" in sh(collect, repo, {**env, "STORAGE_EMULATOR_HOST": gcs.url}).stdout
    sh(["dvc", "repro", "-q"], repo, env)
    sh(["dvc", "push", "-q"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "data v2: 8 photos from users"], repo, env)
    v2_files = file_hashes(repo, *REAL)
    assert len(v2_files) > len(v1_files)  # 8 more photos in data/new
    assert v2_files["models/model.onnx"] != v1_files["models/model.onnx"]

    tracked = ["dvc.lock", "data/new.dvc", "dvclive/metrics.json", "eval"]
    sh(["git", "checkout", v1, "--", *tracked], repo, env)
    sh(["dvc", "checkout", "-q"], repo, env)
    assert file_hashes(repo, *REAL) == v1_files
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    sh(["git", "checkout", "-q", v1], clone, env)
    sh(["python", "-m", "stages.remote", url, "--endpoint", gcs.url], clone, env)
    sh(["dvc", "pull", "-q"], clone, env)
    assert "up to date" in sh(["dvc", "status"], clone, env).stdout
    assert file_hashes(clone, *REAL) == v1_files
    out = sh(["python", "-m", "bot.predict", "--json", str(photos[0])], clone, env).stdout
    result = json.loads(out.splitlines()[0])
    labels = {
        label["name"] for label in json.loads((clone / "models/model.json").read_text())["labels"]
    }
    assert result["verdict"] in {"dog", "unsure"} and result["breeds"][0]["breed"] in labels
