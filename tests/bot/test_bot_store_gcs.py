"""The feedback store on gs:// against a real GCS API server (fake-gcs-server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.gcs import server

ROOT = Path(__file__).resolve().parents[2]

# Runs in its own process: gcsfs reads its settings at import, and only the environment
# (STORAGE_EMULATOR_HOST, no credentials) says where GCS is, as in production.
SCRIPT = """
import io, json, sys
from PIL import Image
from bot.feedback import FeedbackStore

def jpeg(color):
    out = io.BytesIO(); Image.new("RGB", (40, 30), color).save(out, "JPEG"); return out.getvalue()

store = FeedbackStore(sys.argv[1])
kept = [store.keep(jpeg((200, i * 20, 0)), "Beagle", 1, "v1", "beagle", 0.8) for i in range(2)]
kept.append(store.keep(jpeg((0, 0, 200)), "samoyed", 2, "v1", "samoyed", 0.6))
store.set_consent(2, True)
print(json.dumps({"kept": kept, "consent": store.consent(2), "forgot": store.forget(1),
                  "left": store.sidecars()}))
"""


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory):
    running = server.start(tmp_path_factory.mktemp("fake-gcs"))
    yield running
    running.stop()


def test_gs_store_writes_the_layout_collect_reads_and_forgets(gcs, tmp_path):
    bucket = f"doggo-{uuid.uuid4().hex[:12]}"
    gcs.create_bucket(bucket)
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": gcs.url,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"gs://{bucket}/new"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["consent"] is True and result["forgot"] == 2
    objects = gcs.objects(bucket)
    names = sorted(objects)
    assert [n for n in names if not n.startswith("new/.")] == [
        result["kept"][2].split("/", 1)[1],
        result["kept"][2].split("/", 1)[1][:-4] + ".json",
    ]
    assert names[-1].startswith("new/samoyed/samoyed_") and "new/.salt" in names
    assert any(n.startswith("new/.consent/") for n in names)
    photo, sidecar = (objects[n] for n in names if n.startswith("new/samoyed/"))
    # The sidecar is written after the photo: a sidecar always means a complete photo.
    assert int(sidecar["generation"]) > int(photo["generation"])
