"""Handlers that run before all others: drop duplicate updates, rate-limit photos per chat."""

from __future__ import annotations

import logging
import time
from collections import deque

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot import texts
from bot.state import Seen, services

logger = logging.getLogger(__name__)

SEEN = "seen_updates"


async def drop_duplicates(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Telegram re-sends an update after a slow webhook reply: answer each update_id once."""
    seen: Seen = context.bot_data.setdefault(SEEN, Seen())
    if not seen.add(update.update_id):
        logger.info("dropping duplicate update %s", update.update_id)
        raise ApplicationHandlerStop


def _is_photo_work(update: Update) -> bool:
    message = update.message
    return bool(message and (message.photo or message.document))


async def rate_limit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """At most `rate_limit` photos per chat per window; one polite warning per window."""
    if not _is_photo_work(update) or context.chat_data is None:
        return
    settings = services(context.bot_data).settings
    now = time.monotonic()
    recent: deque[float] = context.chat_data.setdefault("recent", deque())
    while recent and now - recent[0] > settings.rate_window_s:
        recent.popleft()
    if len(recent) < settings.rate_limit:
        recent.append(now)
        return
    warned = context.chat_data.get("warned_at", -1e9)
    if now - warned > settings.rate_window_s:
        context.chat_data["warned_at"] = now
        await update.message.reply_text(texts.RATE_LIMITED)
    logger.info("rate limit hit in one chat (%d in %.0fs)", len(recent), settings.rate_window_s)
    raise ApplicationHandlerStop
