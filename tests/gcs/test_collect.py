"""`python -m stages.collect`: the feedback store (a real GCS server or a folder) -> data/new."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stages.collect import LEDGER
from stages.gcs import GRPC_PROBE_ENV
from tests.gcs.repos import file_hashes, photo_bytes, sh, uid
from tests.gcs.server import FakeGcs

pytestmark = pytest.mark.timeout(180)


def put_photos(gcs: FakeGcs, bucket: str, breed: str, seeds: range, sidecar: bool = True) -> set:
    """Upload photos the way the bot stores them (photo first, then its sidecar); their uids."""
    uids = set()
    for seed in seeds:
        data = photo_bytes(seed)
        stem = f"inbox/{breed}/{breed}_{uid(data)}"
        gcs.upload(bucket, f"{stem}.jpg", data)
        if sidecar:
            meta = {"breed": breed, "chat": "ab" * 16, "prediction": breed, "confidence": 0.9}
            gcs.upload(bucket, f"{stem}.json", json.dumps(meta).encode())
        uids.add(uid(data))
    return uids


def photos_in(folder: Path) -> list[str]:
    """uid of every photo in data/new (duplicates stay visible as repeats)."""
    return sorted(p.stem.rsplit("_", 1)[1] for p in folder.glob("*/*.jpg"))


def collect_cmd(bucket: str, *extra: str) -> list[str]:
    return ["python", "-m", "stages.collect", "--from", f"gs://{bucket}/inbox", *extra]


def test_collect_imports_once_and_versions_data_new(
    tiny_repo: Path, gcs: FakeGcs, bucket: str, env: dict
) -> None:
    env = {**env, "STORAGE_EMULATOR_HOST": gcs.url}
    v1 = set(photos_in(tiny_repo / "data/new"))
    new = put_photos(gcs, bucket, "beagle", range(100, 103)) | put_photos(
        gcs, bucket, "papillon", range(103, 106)
    )
    put_photos(gcs, bucket, "papillon", range(106, 107), sidecar=False)  # upload in progress
    gcs.upload(bucket, "inbox/pug/pug_0000000000000000.jpg", b"not a photo")
    gcs.upload(bucket, "inbox/pug/pug_0000000000000000.json", b"{}")
    gcs.upload(bucket, "inbox/.consent/x.json", b"{}")
    dvc_before = (tiny_repo / "data/new.dvc").read_text()

    # Without the variable set: stages.gcs turns gcsfs's 60 s gRPC bucket probe off itself.
    bare_env = {k: v for k, v in env.items() if k != GRPC_PROBE_ENV}
    started = time.monotonic()
    out = sh(collect_cmd(bucket), tiny_repo, bare_env).stdout
    assert time.monotonic() - started < 30
    assert "imported 6" in out and "not_an_image 1" in out
    assert set(photos_in(tiny_repo / "data/new")) == v1 | new  # no half upload, no bad photo
    breeds = json.loads((tiny_repo / "data/new/breeds.json").read_text())
    assert breeds["papillon"]["wnid"] == "n02086910"
    ledger = (tiny_repo / "data/new" / LEDGER).read_text().splitlines()
    assert len(ledger) == 7 and json.loads(ledger[0])["sidecar"]["breed"] == "beagle"
    assert (tiny_repo / "data/new.dvc").read_text() != dvc_before
    assert "up to date" in sh(["dvc", "status", "data/new.dvc"], tiny_repo, env).stdout

    after = file_hashes(tiny_repo, "data/new", "data/new.dvc")
    again = sh(collect_cmd(bucket), tiny_repo, env).stdout
    assert "nothing new" in again
    assert file_hashes(tiny_repo, "data/new", "data/new.dvc") == after


def test_collect_killed_midway_then_rerun_loses_nothing_and_doubles_nothing(
    tiny_repo: Path, gcs: FakeGcs, bucket: str, env: dict
) -> None:
    env = {**env, "STORAGE_EMULATOR_HOST": gcs.url}
    v1 = photos_in(tiny_repo / "data/new")
    new = put_photos(gcs, bucket, "beagle", range(200, 240))
    cmd = collect_cmd(bucket, "--batch-size", "2")
    proc = subprocess.Popen(cmd, cwd=tiny_repo, env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "collected 6/40" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ledger = (tiny_repo / "data/new" / LEDGER).read_text().splitlines()
    assert 6 <= len(ledger) < 40, "the kill should land mid-way"

    sh(collect_cmd(bucket), tiny_repo, env)
    assert photos_in(tiny_repo / "data/new") == sorted(v1 + list(new))  # each exactly once
    assert len((tiny_repo / "data/new" / LEDGER).read_text().splitlines()) == 40
    assert not list((tiny_repo / "data/new").rglob("*.tmp"))
    assert "up to date" in sh(["dvc", "status", "data/new.dvc"], tiny_repo, env).stdout


def test_collect_from_a_local_folder_store(tiny_repo: Path, env: dict, tmp_path: Path) -> None:
    store = tmp_path / "feedback"
    data = photo_bytes(300)
    (store / "pug").mkdir(parents=True)
    (store / "pug" / f"pug_{uid(data)}.jpg").write_bytes(data)
    (store / "pug" / f"pug_{uid(data)}.json").write_text('{"breed": "pug"}')
    env = {**env, "DOGGO_FEEDBACK_URL": store.as_uri()}
    out = sh(["python", "-m", "stages.collect", "--no-dvc"], tiny_repo, env).stdout
    assert "imported 1" in out
    assert (tiny_repo / "data/new/pug" / f"pug_{uid(data)}.jpg").read_bytes() == data


@pytest.mark.parametrize("problem", ["missing_bucket", "endpoint_down", "missing_credentials"])
def test_collect_errors_are_clear_and_leave_data_new_alone(
    problem: str, tiny_repo: Path, gcs: FakeGcs, dead_endpoint: str, env: dict
) -> None:
    endpoint, bucket, expected = {
        "missing_bucket": (gcs.url, "no-such-bucket", "does not exist"),
        "endpoint_down": (dead_endpoint, "any-bucket", "cannot reach the GCS endpoint"),
        "missing_credentials": (None, "any-bucket", "GOOGLE_APPLICATION_CREDENTIALS"),
    }[problem]
    before = file_hashes(tiny_repo, "data/new", "data/new.dvc")
    env = {**env, "STORAGE_EMULATOR_HOST": endpoint} if endpoint else env
    done = sh(collect_cmd(bucket), tiny_repo, env, check=False)
    assert done.returncode == 1 and expected in done.stderr
    assert file_hashes(tiny_repo, "data/new", "data/new.dvc") == before
