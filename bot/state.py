"""What the handlers share: the services in `bot_data` and the answers awaiting feedback."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bot.feedback import FeedbackStore
from bot.model_holder import ModelHolder
from bot.predictor import Prediction
from bot.settings import Settings

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
