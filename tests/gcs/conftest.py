"""A real GCS API server (fake-gcs-server) for the whole session, buckets per test, and the
environment every `dvc`/`python -m ...` subprocess of these tests runs with."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stages.gcs import GRPC_PROBE_ENV
from tests.gcs import server
from tests.gcs.repos import ROOT, make_tiny_repo


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.FakeGcs]:
    """fake-gcs-server on 127.0.0.1 (plain HTTP), started once."""
    running = server.start(tmp_path_factory.mktemp("fake-gcs"))
    yield running
    running.stop()


@pytest.fixture
def bucket(gcs: server.FakeGcs) -> str:
    """A new, empty bucket on the server."""
    name = f"doggo-{uuid.uuid4().hex[:12]}"
    gcs.create_bucket(name)
    return name


@pytest.fixture
def dead_endpoint() -> str:
    """An endpoint URL where nothing listens."""
    return f"http://127.0.0.1:{server.free_port()}"


def subprocess_env(scratch: Path) -> dict[str, str]:
    """Venv first on PATH, the project importable, DVC/git quiet and self-contained, and gcsfs's
    gRPC bucket probe off (else every gcsfs call waits 60 s on the emulator)."""
    env = dict(os.environ)
    env.update(
        {GRPC_PROBE_ENV: "false"},
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(scratch / "dvc-global"),
        DVC_SITE_CACHE_DIR=str(scratch / "dvc-site"),
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    return env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Subprocess environment for one test, without any real credentials or endpoint."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "DOGGO_FEEDBACK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(GRPC_PROBE_ENV, "false")
    return subprocess_env(tmp_path)


@pytest.fixture(scope="session")
def tiny_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny repo, built once (git/dvc start-up is most of its cost)."""
    scratch = tmp_path_factory.mktemp("tiny")
    return make_tiny_repo(scratch / "repo", subprocess_env(scratch))


@pytest.fixture
def tiny_repo(tiny_repo_template: Path, tmp_path: Path) -> Path:
    """A committed git + DVC repo: data/new v1, a train stage, a tiny contract-following model."""
    return Path(shutil.copytree(tiny_repo_template, tmp_path / "repo", symlinks=True))
