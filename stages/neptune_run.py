"""A Neptune run that never breaks the stage using it: one warning, then offline or silence."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from stages.tracking_settings import NeptuneSettings, server_reachable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0  # a TCP check before the client's own 60 s retry loops
STOP_TIMEOUT_S = 30.0  # the most a stage waits at the end for an async run to upload
LOCAL_PREFIXES = ("offline/", "debug/")  # run ids that only exist on the machine that made them


class SafeRun:
    """Guards every call into a neptune run; the first failure warns once, later ones are quiet."""

    def __init__(self, run: Any | None, run_id: str | None, warned: bool = False) -> None:
        self.raw = run
        self.id = run_id
        self._warned = warned

    @property
    def active(self) -> bool:
        """True while calls still reach a neptune run."""
        return self.raw is not None

    def _guard(self, what: str, call: Callable[[Any], None]) -> None:
        if self.raw is None:
            return
        try:
            call(self.raw)
        except Exception as err:  # noqa: BLE001 - tracking must never stop a stage
            self._warn(f"Neptune {what} failed ({err.__class__.__name__}); tracking continues")

    def _warn(self, message: str) -> None:
        if self._warned:
            log.debug(message)
        else:
            self._warned = True
            log.warning(message)

    def assign(self, path: str, value: Any) -> None:
        """Set a field; values neptune cannot store are stringified, non-finite floats dropped."""
        value = neptune_value(value)
        if value is not None:
            self._guard(f"assign {path}", lambda run: run[path].assign(value))

    def assign_all(self, prefix: str, values: Mapping[str, Any]) -> None:
        """Set every leaf of a nested mapping under `prefix`."""
        for key, value in flatten(values).items():
            self.assign(f"{prefix}/{key}", value)

    def append(self, path: str, value: float, step: float | None = None) -> None:
        """Append to a float series (non-finite values are dropped: the server rejects them)."""
        value = float(value)
        if math.isfinite(value):
            self._guard(f"append {path}", lambda run: run[path].append(value, step=step))

    def add_tags(self, tags: Iterable[str]) -> None:
        """Add tags (empty ones skipped)."""
        tags = [t for t in tags if t]
        if tags:
            self._guard("tagging", lambda run: run["sys/tags"].add(tags))

    def upload(self, path: str, content: bytes | Path, extension: str = "") -> None:
        """Upload bytes or a small file's bytes, copied now: offline runs would otherwise only
        keep the file's path, and upload whatever it holds at `neptune sync` time."""
        try:
            data = content.read_bytes() if isinstance(content, Path) else content
        except OSError as err:
            self._warn(f"Neptune upload {path}: cannot read the file ({err.__class__.__name__})")
            return
        ext = extension or (content.suffix.lstrip(".") if isinstance(content, Path) else "bin")
        self._guard(f"upload {path}", lambda run: run[path].upload(_file(data, ext)))

    def stop(self) -> None:
        """Flush and close (bounded wait); the run accepts nothing afterwards."""
        self._guard("stop", lambda run: run.stop(seconds=STOP_TIMEOUT_S))
        self.raw = None


def flatten(values: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a/b': 1}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{parent}/{key}" if parent else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def neptune_value(value: Any) -> Any:
    """The value as neptune stores it: bool/int/float/str kept, anything else as str."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def open_run(
    settings: NeptuneSettings,
    *,
    name: str,
    tags: Iterable[str] = (),
    with_id: str | None = None,
) -> SafeRun:
    """Open (or, online, resume `with_id`) a run; trouble warns once and falls back to offline."""
    mode = settings.resolved_mode()
    problem = None
    if mode in ("async", "sync"):
        token = settings.api_token.get_secret_value() if settings.api_token else ""
        project = settings.resolved_project()
        if not token:
            problem = f"NEPTUNE_MODE={mode} needs NEPTUNE_API_TOKEN"
        elif not project:
            problem = f"no project for a {settings.run_kind()} run (set NEPTUNE_PROJECT)"
        else:
            problem = server_reachable(token, CONNECT_TIMEOUT_S)
        if problem is None:
            try:
                run = _init_online(mode, name, tags, project, token, with_id)
                return SafeRun(run, run["sys/id"].fetch())
            except Exception as err:  # noqa: BLE001 - bad token, unknown project, server error
                problem = f"the server refused the run ({err.__class__.__name__})"
        log.warning("Neptune unavailable: %s; logging offline to .neptune/ instead", problem)
        mode = "offline"
    try:
        # Offline and debug runs cannot be resumed (the client has no local index of them).
        run = _init(mode, name, tags)
    except Exception as err:  # noqa: BLE001
        message = f"Neptune {mode} run failed to start ({err.__class__.__name__}); not tracking"
        if problem is None:
            log.warning(message)
        return SafeRun(None, None, warned=True)
    return SafeRun(run, f"{mode}/{run._id}", warned=problem is not None)


def _init_online(
    mode: str, name: str, tags: Iterable[str], project: str, token: str, with_id: str | None
) -> Any:
    """Resume `with_id` when it is a server run id; a new run when it is not (or is gone)."""
    if with_id and not with_id.startswith(LOCAL_PREFIXES):
        try:
            return _init(mode, name, tags, project=project, api_token=token, with_id=with_id)
        except Exception as err:  # noqa: BLE001
            log.info("Neptune run %s not resumable (%s); new run", with_id, err.__class__.__name__)
    return _init(mode, name, tags, project=project, api_token=token)


def _init(mode: str, name: str, tags: Iterable[str], **kwargs: Any) -> Any:
    import neptune  # heavy; imported only when a run is opened

    return neptune.init_run(
        mode=mode,
        name=name,
        tags=[t for t in tags if t] or None,
        capture_stdout=False,  # stage output stays in the terminal and DVC, not the tracker
        capture_stderr=False,
        capture_hardware_metrics=mode in ("async", "sync"),
        source_files=[],  # the code is identified by the git commit field
        git_ref=False,
        **kwargs,
    )


def _file(data: bytes, extension: str) -> Any:
    from neptune.types import File

    return File.from_content(data, extension=extension)
