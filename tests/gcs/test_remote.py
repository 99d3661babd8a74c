"""`python -m stages.remote` on a real GCS API server: config split, push/clone/pull, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from stages.gcs import GcsAccess
from stages.remote import remote_commands
from tests.gcs.repos import file_hashes, sh
from tests.gcs.server import FakeGcs

pytestmark = pytest.mark.timeout(180)

TRACKED = ("data/new", "models", "metrics.json", "dvc.lock", "data/new.dvc")


def set_remote(repo: Path, url: str, endpoint: str, env: dict, check: bool = True):
    return sh(["python", "-m", "stages.remote", url, "--endpoint", endpoint], repo, env, check)


def workspace_state(repo: Path, env: dict) -> tuple:
    """What must not change when a command fails: git status, dvc status, file bytes."""
    git = sh(["git", "status", "--porcelain", "--ignored"], repo, env).stdout
    dvc = sh(["dvc", "status", "--json"], repo, env).stdout
    config = file_hashes(
        repo, ".dvc/config", *([".dvc/config.local"] * (repo / ".dvc/config.local").exists())
    )
    return git, dvc, config, file_hashes(repo, *TRACKED)


def test_remote_commits_the_url_and_keeps_endpoint_and_credentials_local(
    tiny_repo: Path, gcs: FakeGcs, bucket: str, env: dict
) -> None:
    set_remote(tiny_repo, f"gs://{bucket}/dvc", gcs.url, env)
    shared = (tiny_repo / ".dvc/config").read_text()
    private = (tiny_repo / ".dvc/config.local").read_text()
    assert f"url = gs://{bucket}/dvc" in shared and "remote = gcs" in shared
    assert gcs.url not in shared and f"endpointurl = {gcs.url}" in private
    status = sh(["git", "status", "--porcelain"], tiny_repo, env).stdout
    assert ".dvc/config" in status and "config.local" not in status  # DVC git-ignores it
    # A key file goes to config.local too (not probed here: a real key would call Google).
    access = GcsAccess(endpoint=None, credentials=Path("/keys/sa.json"))
    commands = remote_commands("gcs", "gs://b/dvc", access, default=True)
    assert commands[0] == ["remote", "add", "--force", "--default", "gcs", "gs://b/dvc"]
    assert commands[1] == ["remote", "modify", "--local", "gcs", "credentialpath", "/keys/sa.json"]


def test_push_then_fresh_clone_pulls_a_working_model(
    tiny_repo: Path, gcs: FakeGcs, bucket: str, env: dict, tmp_path: Path
) -> None:
    url = f"gs://{bucket}/dvc"
    set_remote(tiny_repo, url, gcs.url, env)
    sh(["git", "commit", "-q", "-m", "remote", "--", ".dvc/config"], tiny_repo, env)
    started = time.monotonic()
    sh(["dvc", "push"], tiny_repo, env)
    assert time.monotonic() - started < 30, "dvc push waited (gRPC bucket probe not disabled?)"
    stored = gcs.objects(bucket, "dvc/")
    assert len(stored) >= 10  # 8 photos + model.onnx + model.json (+ .dir manifests)

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(tiny_repo), str(clone)], tmp_path, env)
    assert not (clone / "models").exists()
    set_remote(clone, url, gcs.url, env)  # what a new machine does: the endpoint is private
    sh(["dvc", "pull"], clone, env)
    assert "up to date" in sh(["dvc", "status"], clone, env).stdout
    assert file_hashes(clone, *TRACKED) == file_hashes(tiny_repo, *TRACKED)
    photo = next((clone / "data/new/pug").glob("*.jpg"))
    out = sh(["python", "-m", "bot.predict", "--model", "models", "--json", str(photo)], clone, env)
    result = json.loads(out.stdout.splitlines()[0])
    assert {b["breed"] for b in result["breeds"]} <= {"beagle", "pug"}


@pytest.mark.parametrize("problem", ["missing_bucket", "missing_credentials", "endpoint_down"])
def test_remote_errors_are_clear_and_change_nothing(
    problem: str, tiny_repo: Path, gcs: FakeGcs, bucket: str, dead_endpoint: str, env: dict
) -> None:
    args = {
        "missing_bucket": ["gs://no-such-bucket/dvc", "--endpoint", gcs.url],
        "missing_credentials": [f"gs://{bucket}/dvc"],
        "endpoint_down": [f"gs://{bucket}/dvc", "--endpoint", dead_endpoint],
    }[problem]
    expected = {
        "missing_bucket": "bucket gs://no-such-bucket does not exist",
        "missing_credentials": "GOOGLE_APPLICATION_CREDENTIALS",
        "endpoint_down": "cannot reach the GCS endpoint",
    }[problem]
    before = workspace_state(tiny_repo, env)
    done = sh(["python", "-m", "stages.remote", *args], tiny_repo, env, check=False)
    assert done.returncode == 1 and expected in done.stderr
    assert "unchanged" in done.stderr
    assert workspace_state(tiny_repo, env) == before


def test_push_with_the_endpoint_down_fails_and_changes_nothing(
    tiny_repo: Path, gcs: FakeGcs, bucket: str, dead_endpoint: str, env: dict, tmp_path: Path
) -> None:
    set_remote(tiny_repo, f"gs://{bucket}/dvc", gcs.url, env)
    sh(["dvc", "remote", "modify", "--local", "gcs", "endpointurl", dead_endpoint], tiny_repo, env)
    before = workspace_state(tiny_repo, env)
    done = sh(["dvc", "push"], tiny_repo, env, check=False)
    assert done.returncode != 0 and "cannot connect to host" in done.stderr.lower()
    assert workspace_state(tiny_repo, env) == before
    assert gcs.objects(bucket) == {}
