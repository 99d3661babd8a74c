"""The bot's settings: one object, read from the environment where it is used (never at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL_DIR = Path("models")
BASELINE_SUBDIR = "baseline"


class Settings(BaseSettings):
    """Every knob of the bot; each field is read from the environment variable in its alias."""

    # Only the documented names are read (field names are not: no stray THREADS or TOKEN).
    model_config = SettingsConfigDict(extra="ignore")

    token: SecretStr = Field(validation_alias="TELEGRAM_BOT_TOKEN")
    api_url: str = Field("https://api.telegram.org", validation_alias="TELEGRAM_API_URL")
    model_dir: Path = Field(DEFAULT_MODEL_DIR, validation_alias="DOGGO_MODEL_DIR")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), validation_alias="DOGGO_ADMIN_IDS"
    )
    data_policy: Literal["off", "ask", "on"] = Field("ask", validation_alias="DOGGO_DATA_POLICY")
    feedback_url: str = Field("file://./feedback", validation_alias="DOGGO_FEEDBACK_URL")
    # Salt for the chat-id hash in sidecars; when unset, a random salt is kept in the store.
    feedback_salt: SecretStr | None = Field(None, validation_alias="DOGGO_FEEDBACK_SALT")
    webhook_url: str | None = Field(None, validation_alias="WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(None, validation_alias="WEBHOOK_SECRET")
    webhook_listen: str = Field("0.0.0.0", validation_alias="WEBHOOK_LISTEN")
    webhook_port: int = Field(8080, validation_alias="WEBHOOK_PORT")
    rate_limit: int = Field(20, ge=1, validation_alias="DOGGO_RATE_LIMIT")  # photos per window
    rate_window_s: float = Field(60.0, gt=0, validation_alias="DOGGO_RATE_WINDOW_S")
    send_retries: int = Field(3, ge=0, validation_alias="DOGGO_SEND_RETRIES")
    send_backoff_s: float = Field(0.5, ge=0, validation_alias="DOGGO_SEND_BACKOFF_S")
    request_timeout_s: float = Field(10.0, gt=0, validation_alias="DOGGO_REQUEST_TIMEOUT_S")
    send_rate: float = Field(30.0, ge=0, validation_alias="DOGGO_SEND_RATE")  # messages/s; 0: off
    threads: int = Field(2, ge=1, validation_alias="DOGGO_THREADS")  # inference threads
    max_download_mb: float = Field(20.0, gt=0, validation_alias="DOGGO_MAX_DOWNLOAD_MB")
    max_pixels: int = Field(60_000_000, gt=0, validation_alias="DOGGO_MAX_PIXELS")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(",", " ").split())
        return value

    @field_validator("api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_URL needs WEBHOOK_SECRET (checked on every webhook request)")
        return self

    @property
    def base_url(self) -> str:
        """Bot API method URL prefix for python-telegram-bot (`{token}` is filled in by PTB)."""
        return f"{self.api_url}/bot{{token}}"

    @property
    def base_file_url(self) -> str:
        """Bot API file download prefix."""
        return f"{self.api_url}/file/bot{{token}}"


def settings_from(**values: object) -> Settings:
    """Settings from field names (tests, tools): `settings_from(token=..., data_policy="on")`."""
    fields = Settings.model_fields
    return Settings(**{fields[name].validation_alias: value for name, value in values.items()})


def resolve_model_dir(model_dir: Path) -> Path:
    """`models` serves `models/baseline` until a trained `models/model.onnx` exists."""
    if (model_dir / "model.onnx").exists():
        return model_dir
    baseline = model_dir / BASELINE_SUBDIR
    if (baseline / "model.onnx").exists():
        return baseline
    return model_dir
