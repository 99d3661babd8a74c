"""Bot fixtures: the Bot API stub on 127.0.0.1, a running bot against it, small test photos."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from telegram.ext import Application

from bot.app import build_application, serve
from bot.feedback import FeedbackStore
from bot.model_holder import ModelHolder
from bot.settings import Settings, settings_from
from tests.bot.telegram_stub import TelegramStub
from tests.bot.tiny_model import write_tiny_model


@pytest.fixture
def anyio_backend() -> str:
    """The bot is asyncio-only."""
    return "asyncio"


@pytest.fixture
async def stub() -> AsyncIterator[TelegramStub]:
    """A fresh Bot API stub listening on 127.0.0.1."""
    server = await TelegramStub().start()
    yield server
    await server.stop()


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """The tiny contract model: red photo -> Red setter, black -> not a dog, grey -> unsure."""
    return write_tiny_model(tmp_path / "model")


def bot_settings(stub: TelegramStub, model_dir: Path, feedback: Path, **overrides: Any) -> Settings:
    """Settings pointing at the stub, a temp feedback folder, fast retries."""
    values: dict[str, Any] = {
        "token": stub.token,
        "api_url": stub.api_url,
        "model_dir": model_dir,
        "feedback_url": f"file://{feedback}",
        "feedback_salt": "test-salt",
        "data_policy": "on",
        "send_backoff_s": 0.05,
        "request_timeout_s": 5.0,
        "admin_ids": frozenset({1}),
        "threads": 2,
    }
    return settings_from(**(values | overrides))


@asynccontextmanager
async def running_bot(settings: Settings, stub: TelegramStub) -> AsyncIterator[Application]:
    """The real Application, as `python -m bot` builds it, serving until the block ends."""
    holder = ModelHolder.load(settings.model_dir, settings.threads, settings.max_pixels)
    salt = settings.feedback_salt.get_secret_value() if settings.feedback_salt else None
    store = FeedbackStore(settings.feedback_url, salt)
    application = build_application(settings, holder, store, webhook=bool(settings.webhook_url))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, settings, stop))
    first_call = "setWebhook" if settings.webhook_url else "getUpdates"
    try:
        waiter = asyncio.create_task(stub.wait_calls(first_call, 1, timeout=15))
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()  # raises why the bot did not start
        waiter.result()
        yield application
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        holder.close()


def image_bytes(img: Image.Image, fmt: str = "JPEG", **save: Any) -> bytes:
    """Encode a PIL image."""
    out = io.BytesIO()
    img.save(out, format=fmt, **save)
    return out.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    """A one-colour JPEG (what the tiny model reads)."""
    return image_bytes(Image.new("RGB", size, color))


def keyboard_data(message: dict) -> list[str]:
    """Every callback_data in a sent message's inline keyboard."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row if "callback_data" in button]
