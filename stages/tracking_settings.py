"""Where Neptune runs go: mode, token and project from the environment."""

from __future__ import annotations

import base64
import json
import logging
import socket
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

Mode = Literal["async", "sync", "offline", "debug"]


class NeptuneSettings(BaseSettings):
    """Neptune settings from the environment; create it where a run is opened, never at import.

    NEPTUNE_MODE: offline (default without a token), async (default with one), sync, or debug
    (tests: nothing is written). NEPTUNE_API_TOKEN: the server's token (never logged).
    `dvc exp run` experiments go to NEPTUNE_EXPERIMENT_PROJECT, plain `dvc repro` trainings to
    NEPTUNE_TRAINING_PROJECT; both fall back to NEPTUNE_PROJECT.
    """

    model_config = SettingsConfigDict(env_prefix="NEPTUNE_", extra="ignore")

    mode: Mode | None = None
    api_token: SecretStr | None = None
    project: str | None = None
    experiment_project: str | None = None
    training_project: str | None = None
    # Set by DVC for every stage of `dvc exp run` (checked on dvc 3.67), absent under `dvc repro`.
    dvc_exp_name: str | None = Field(default=None, validation_alias="DVC_EXP_NAME")

    def resolved_mode(self) -> Mode:
        """The explicit mode, else async with a token and offline without one."""
        if self.mode:
            return self.mode
        return "async" if self.api_token else "offline"

    def resolved_project(self) -> str | None:
        """The experiment project under `dvc exp run`, the training project otherwise."""
        split = self.experiment_project if self.dvc_exp_name else self.training_project
        return split or self.project

    def run_kind(self) -> str:
        """'experiment' under `dvc exp run`, 'training' under plain `dvc repro` or by hand."""
        return "experiment" if self.dvc_exp_name else "training"


def load_settings() -> NeptuneSettings:
    """The settings, or offline ones (one warning) when the environment holds an invalid value."""
    try:
        return NeptuneSettings()
    except ValidationError as err:
        # Only the field names: pydantic's message would echo the values, the token among them.
        fields = ", ".join(str(e["loc"][0]) for e in err.errors())
        log.warning("invalid Neptune settings (%s); logging offline to .neptune/", fields)
        return NeptuneSettings.model_construct(mode="offline")


def token_server(token: str) -> tuple[str, int] | None:
    """(host, port) of the API server a Neptune token points at, or None if it is malformed."""
    try:
        fields = json.loads(base64.b64decode(token.strip().encode()).decode("utf-8"))
        url = urlsplit(fields.get("api_url") or fields["api_address"])
        port = url.port or (443 if url.scheme == "https" else 80)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return (url.hostname, port) if url.hostname else None


def server_reachable(token: str, timeout: float) -> str | None:
    """None when the token's server accepts a TCP connection, else why not (without the token).

    The neptune client retries a dead server for 60 s per request (read once at import), so
    this short check runs first and lets a down server cost `timeout` seconds at most.
    """
    server = token_server(token)
    if server is None:
        return "the API token is malformed"
    try:
        with socket.create_connection(server, timeout=timeout):
            return None
    except OSError as err:
        return f"cannot reach {server[0]}:{server[1]} ({err.__class__.__name__})"
