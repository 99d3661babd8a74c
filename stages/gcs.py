"""GCS plumbing shared by `stages.remote` and `stages.collect`: access settings, a quick probe,
and an fsspec filesystem for a store URL (`file://...`, a plain path, or `gs://bucket/prefix`).

gcsfs >= 2025.x first asks the Storage Control API over gRPC what kind of bucket it talks to
(hierarchical/zonal). Against an emulator (fake-gcs-server speaks only HTTP) that call retries for
60 s, and its failure is not cached, so it repeats. `GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`
(read when gcsfs is imported) selects the plain HTTP filesystem; this project uses no zonal or
hierarchical buckets, so it is our default (`grpc_probe_env`), for our own processes and for the
`dvc` processes we start.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

GRPC_PROBE_ENV = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"
GCS_ENDPOINT = "https://storage.googleapis.com"
SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]


class StorageError(RuntimeError):
    """A storage problem worth telling the user in one line (missing bucket, credentials, ...)."""


class GcsSettings(BaseSettings):
    """Credentials and emulator endpoint, under the names Google's own clients read."""

    model_config = SettingsConfigDict(extra="ignore")

    google_application_credentials: Path | None = None
    storage_emulator_host: str | None = None


@dataclass(frozen=True)
class GcsAccess:
    """How to reach GCS: an endpoint (None = Google's) and a credentials file (None = anonymous)."""

    endpoint: str | None
    credentials: Path | None

    @property
    def base_url(self) -> str:
        return (self.endpoint or GCS_ENDPOINT).rstrip("/")

    def fs_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `gcsfs.GCSFileSystem`."""
        token = str(self.credentials) if self.credentials else "anon"
        return {"token": token, "endpoint_url": self.endpoint}


def normalise_endpoint(endpoint: str | None) -> str | None:
    """`host:port` (as STORAGE_EMULATOR_HOST is often written) -> `http://host:port`."""
    if not endpoint:
        return None
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def resolve_access(endpoint: str | None = None, credentials: Path | None = None) -> GcsAccess:
    """Arguments first, then GOOGLE_APPLICATION_CREDENTIALS / STORAGE_EMULATOR_HOST."""
    settings = GcsSettings()
    endpoint = normalise_endpoint(endpoint or settings.storage_emulator_host)
    credentials = credentials or settings.google_application_credentials
    if credentials is not None:
        credentials = credentials.expanduser().resolve()
        if not credentials.is_file():
            raise StorageError(f"credentials file {credentials} does not exist")
    elif endpoint is None:
        raise StorageError(
            "no GCS credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
            "(or pass --credentials PATH); only an emulator (--endpoint) works without one"
        )
    return GcsAccess(endpoint=endpoint, credentials=credentials)


def split_gs_url(url: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> (`bucket`, `some/prefix`)."""
    parts = urlsplit(url)
    if parts.scheme != "gs" or not parts.netloc:
        raise StorageError(f"{url!r} is not a gs://bucket[/prefix] URL")
    return parts.netloc, parts.path.strip("/")


def grpc_probe_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default: os.environ) with gcsfs's gRPC bucket-type probe off by default."""
    env = dict(os.environ if env is None else env)
    env.setdefault(GRPC_PROBE_ENV, "false")
    return env


def disable_grpc_probe() -> None:
    """Turn the gRPC probe off in this process (must run before gcsfs is imported)."""
    os.environ.setdefault(GRPC_PROBE_ENV, "false")


def run_dvc(*args: str, cwd: Path | None = None) -> None:
    """Run `dvc <args>` with this Python and the gRPC probe off; StorageError with dvc's message."""
    cmd = [sys.executable, "-m", "dvc", *args]
    done = subprocess.run(cmd, cwd=cwd, env=grpc_probe_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise StorageError(f"`dvc {' '.join(args)}` failed: {done.stderr.strip()}")


def _session(access: GcsAccess) -> Any:
    import google.auth
    import requests
    from google.auth.transport.requests import AuthorizedSession

    if access.credentials is None:
        return requests.Session()
    try:
        creds, _ = google.auth.load_credentials_from_file(str(access.credentials), scopes=SCOPES)
    except google.auth.exceptions.GoogleAuthError as err:
        raise StorageError(f"credentials file {access.credentials} is not usable: {err}") from err
    return AuthorizedSession(creds)


def probe_bucket(bucket: str, access: GcsAccess, timeout: float = 10.0) -> None:
    """Fail fast, with a clear StorageError, unless `bucket` is reachable with `access`."""
    import google.auth.exceptions
    import requests

    url = f"{access.base_url}/storage/v1/b/{bucket}"
    try:
        response = _session(access).get(url, timeout=timeout)
    except requests.Timeout as err:
        raise StorageError(f"cannot reach the GCS endpoint {access.base_url}: timed out") from err
    except requests.ConnectionError as err:
        why = "connection refused" if "refused" in str(err).lower() else str(err)
        raise StorageError(f"cannot reach the GCS endpoint {access.base_url}: {why}") from err
    except google.auth.exceptions.GoogleAuthError as err:
        raise StorageError(f"credentials {access.credentials} were refused: {err}") from err
    if response.status_code == 404:
        raise StorageError(f"bucket gs://{bucket} does not exist (at {access.base_url})")
    if response.status_code in (401, 403):
        raise StorageError(
            f"no access to gs://{bucket} with credentials {access.credentials or '(anonymous)'}: "
            f"HTTP {response.status_code}"
        )
    if response.status_code != 200:
        raise StorageError(f"gs://{bucket}: unexpected HTTP {response.status_code} from {url}")
    log.debug("bucket gs://%s is reachable at %s", bucket, access.base_url)


def open_store(url: str, access: GcsAccess | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, root path) for a store URL; gs:// URLs are probed first."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        from fsspec.implementations.local import LocalFileSystem

        # file://relative/dir puts "relative" in netloc; file:///abs/dir has an empty netloc
        root = Path(parts.netloc + parts.path if parts.scheme else url).expanduser().resolve()
        if not root.is_dir():
            raise StorageError(f"store {url} is not a directory ({root})")
        return LocalFileSystem(), root.as_posix()
    bucket, prefix = split_gs_url(url)
    access = access or resolve_access()
    probe_bucket(bucket, access)
    disable_grpc_probe()
    import gcsfs

    fs = gcsfs.GCSFileSystem(**access.fs_kwargs())
    return fs, f"{bucket}/{prefix}".rstrip("/")
