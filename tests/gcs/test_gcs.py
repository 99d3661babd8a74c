"""stages.gcs: URL parsing, access resolution and the gRPC-probe switch (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.gcs import (
    GRPC_PROBE_ENV,
    StorageError,
    grpc_probe_env,
    open_store,
    resolve_access,
    split_gs_url,
)


def test_split_gs_url() -> None:
    assert split_gs_url("gs://bucket/a/b/") == ("bucket", "a/b")
    assert split_gs_url("gs://bucket") == ("bucket", "")
    with pytest.raises(StorageError, match="not a gs://"):
        split_gs_url("s3://bucket/x")


def test_access_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    access = resolve_access()
    assert access.endpoint == "http://127.0.0.1:4443" and access.fs_kwargs()["token"] == "anon"
    key = tmp_path / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert resolve_access("http://h:1").credentials == key
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(StorageError, match="does not exist"):
        resolve_access()


def test_grpc_probe_is_off_unless_the_user_says_otherwise() -> None:
    assert grpc_probe_env({})[GRPC_PROBE_ENV] == "false"
    assert grpc_probe_env({GRPC_PROBE_ENV: "true"})[GRPC_PROBE_ENV] == "true"


def test_local_store_urls(tmp_path: Path) -> None:
    _, root = open_store(tmp_path.as_uri())
    assert root == tmp_path.as_posix()
    with pytest.raises(StorageError, match="not a directory"):
        open_store((tmp_path / "missing").as_uri())
