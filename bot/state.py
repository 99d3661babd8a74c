"""What the handlers share: the services in `bot_data` and the answers awaiting feedback."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, NetworkError

from bot.feedback import FeedbackStore
from bot.model_holder import ModelHolder
from bot.predictor import Prediction
from bot.settings import Settings

logger = logging.getLogger(__name__)

SERVICES = "services"
PENDING = "pending"
AWAITING = "awaiting"
MAX_PENDING = 20  # answers per chat that still accept feedback


@dataclass
class Services:
    """Created once in `bot.app.build_application`, reached through `context.bot_data`."""

    settings: Settings
    holder: ModelHolder
    store: FeedbackStore


@dataclass
class Pending:
    """One answer awaiting feedback. The photo is not kept in memory: `file_id` fetches it again."""

    file_id: str
    prediction: Prediction
    model_version: str
    answer_id: int | None = None  # the bot's reply carrying the keyboard
    label: str | None = None  # breed chosen by the user, waiting for consent
    typed: str | None = None  # breed typed by the user (slug), waiting for confirmation
    matched: str | None = None  # known breed close to `typed`
    done: bool = False


@dataclass
class Seen:
    """A bounded memory of recent update ids, to answer a re-sent update once."""

    limit: int = 2048
    ids: OrderedDict[int, None] = field(default_factory=OrderedDict)

    def add(self, update_id: int) -> bool:
        """Remember `update_id`; False if it was already seen."""
        if update_id in self.ids:
            return False
        self.ids[update_id] = None
        if len(self.ids) > self.limit:
            self.ids.popitem(last=False)
        return True


def services(bot_data: dict[str, Any]) -> Services:
    """The shared services."""
    return bot_data[SERVICES]


def pending_of(chat_data: dict[str, Any]) -> OrderedDict[int, Pending]:
    """The chat's answers awaiting feedback, oldest first (bounded)."""
    return chat_data.setdefault(PENDING, OrderedDict())


def remember(chat_data: dict[str, Any], key: int, record: Pending) -> None:
    """Keep `record` under `key`, forgetting the oldest beyond `MAX_PENDING`."""
    pending = pending_of(chat_data)
    pending[key] = record
    while len(pending) > MAX_PENDING:
        pending.popitem(last=False)


async def download(bot: Bot, file_id: str, settings: Settings) -> bytes:
    """A Telegram file into memory. `getFile` is retried by the limiter; the download (which
    bypasses it) is retried here on timeouts, 5xx and dropped connections."""
    telegram_file = await bot.get_file(file_id)
    delay = settings.send_backoff_s
    for attempt in range(settings.send_retries + 1):
        try:
            return bytes(await telegram_file.download_as_bytearray())
        except BadRequest:
            raise
        except NetworkError as exc:
            if attempt == settings.send_retries:
                raise
            logger.warning("download failed (%s); retry %d in %.1fs", exc, attempt + 1, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
