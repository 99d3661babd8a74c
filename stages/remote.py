"""Make a GCS bucket the default DVC remote: `python -m stages.remote gs://bucket/prefix`.

What is shareable goes into `.dvc/config` (committed): the remote's URL and `core.remote`. What is
private or machine-specific goes into `.dvc/config.local` (git-ignored by DVC): the credentials
path and an emulator endpoint. The bucket is probed first; on any failure both config files are
left byte-for-byte as they were.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stages.gcs import (
    GcsAccess,
    StorageError,
    probe_bucket,
    resolve_access,
    run_dvc,
    split_gs_url,
)

log = logging.getLogger(__name__)

CONFIG_FILES = (".dvc/config", ".dvc/config.local")


def dvc_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `.dvc/`."""
    for path in (start, *start.parents):
        if (path / ".dvc").is_dir():
            return path
    raise StorageError(f"{start} is not inside a DVC repository (no .dvc/ found)")


def remote_commands(name: str, url: str, access: GcsAccess, default: bool) -> list[list[str]]:
    """The `dvc remote ...` invocations that configure the remote."""
    commands = [["remote", "add", "--force", *(["--default"] if default else []), name, url]]
    local = ["remote", "modify", "--local", name]
    if access.credentials is not None:
        commands.append([*local, "credentialpath", str(access.credentials)])
    else:
        commands.append([*local, "allow_anonymous_login", "true"])
    if access.endpoint is not None:
        commands.append([*local, "endpointurl", access.endpoint])
    return commands


def configure_remote(
    root: Path, url: str, access: GcsAccess, name: str = "gcs", default: bool = True
) -> None:
    """Probe the bucket, then write the remote; restore both config files on any failure."""
    bucket, _ = split_gs_url(url)
    probe_bucket(bucket, access)
    saved = {p: (root / p).read_bytes() if (root / p).exists() else None for p in CONFIG_FILES}
    try:
        for args in remote_commands(name, url, access, default):
            run_dvc(*args, cwd=root)
    except BaseException:
        for rel, content in saved.items():
            if content is None:
                (root / rel).unlink(missing_ok=True)
            else:
                (root / rel).write_bytes(content)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="gs://bucket/prefix for the DVC cache")
    parser.add_argument("--endpoint", help="GCS API endpoint (an emulator); else Google's")
    parser.add_argument(
        "--credentials", type=Path, help="key file; else $GOOGLE_APPLICATION_CREDENTIALS"
    )
    parser.add_argument("--name", default="gcs", help="remote name (default: gcs)")
    parser.add_argument(
        "--no-default", action="store_true", help="add it without making it default"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        root = dvc_root(Path.cwd())
        access = resolve_access(args.endpoint, args.credentials)
        configure_remote(root, args.url, access, args.name, default=not args.no_default)
    except StorageError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201 - CLI output
        print("DVC config left unchanged.", file=sys.stderr)  # noqa: T201
        return 1
    where = f" at {access.endpoint}" if access.endpoint else ""
    role = "remote" if args.no_default else "default remote"
    print(f"DVC {role} {args.name!r} -> {args.url}{where}")  # noqa: T201 - CLI output
    print("Commit .dvc/config; .dvc/config.local (private) stays on this machine.")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
