"""Command and message handlers: `async def handler(update, context) -> None`, as in PTB's docs."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from telegram import Message, Update
from telegram.ext import ContextTypes

from bot import feedback_flow, texts
from bot.feedback_flow import CONSENT_KEY
from bot.imaging import IMAGE_SUFFIXES, BadImage
from bot.model_holder import ReloadError
from bot.state import AWAITING, PENDING, Pending, download, remember, services

logger = logging.getLogger(__name__)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: say what the bot does."""
    await update.effective_message.reply_text(texts.START)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what it can do and the data policy."""
    svc = services(context.bot_data)
    n_breeds = len(svc.holder.predictor.labels)
    await update.effective_message.reply_text(texts.help_text(svc.settings.data_policy, n_breeds))


def find_accuracy(metrics: dict) -> float | None:
    """The test top-1 accuracy in a (possibly nested) metrics dict, if it has one."""
    flat: dict[str, float] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}".lower()
            if isinstance(value, dict):
                walk(value, name + "/")
            elif isinstance(value, int | float) and not isinstance(value, bool):
                flat[name] = float(value)

    walk(metrics, "")
    for wanted in ("test", ""):
        for key, value in flat.items():
            if wanted in key and ("top1" in key or key.endswith("accuracy")):
                return value
    return None


def model_accuracy(model_dir: Path, meta: dict) -> float | None:
    """eval/metrics.json beside `models/` when it scored this very model, else model.json's."""
    eval_metrics = model_dir.resolve().parent / "eval" / "metrics.json"
    if eval_metrics.is_file():
        try:
            metrics = json.loads(eval_metrics.read_text())
        except ValueError:
            metrics = {}
        scored = (metrics.get("model") or {}).get("version")
        if scored == meta.get("version"):
            found = find_accuracy({k: v for k, v in metrics.items() if k != "per_breed"})
            if found is not None:
                return found
    return find_accuracy(meta.get("metrics") or {})


async def model_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/model: version, breed count, test accuracy."""
    holder = services(context.bot_data).holder
    predictor = holder.predictor
    accuracy = model_accuracy(holder.model_dir, predictor.meta)
    text = texts.model_info(predictor.name, predictor.version, len(predictor.labels), accuracy)
    await update.effective_message.reply_text(text)


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: delete every photo kept from this chat, and say how many."""
    store = services(context.bot_data).store
    count = await asyncio.to_thread(store.forget, update.effective_chat.id)
    for key in (PENDING, AWAITING, CONSENT_KEY):  # the rate limit's memory stays
        context.chat_data.pop(key, None)
    await update.effective_message.reply_text(texts.FORGOTTEN.format(count=count))


async def reload_model(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reload (admins): load the model again; the old one answers until the new one passed."""
    svc = services(context.bot_data)
    user = update.effective_user
    if not (user and user.id in svc.settings.admin_ids):
        await update.effective_message.reply_text(texts.NOT_ADMIN)
        return
    try:
        predictor = await svc.holder.reload()
    except ReloadError as exc:
        logger.error("reload refused: %s", exc)
        text = texts.RELOAD_FAILED.format(version=svc.holder.predictor.version, error=exc)
    else:
        text = texts.RELOADED.format(version=predictor.version, n_breeds=len(predictor.labels))
    await update.effective_message.reply_text(text)


def _is_image_document(message: Message) -> bool:
    document = message.document
    if document is None:
        return False
    if (document.mime_type or "").startswith("image/"):
        return True
    return (document.file_name or "").lower().endswith(IMAGE_SUFFIXES)


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo or image file: download the largest size to memory, predict, reply with top-3."""
    message = update.effective_message
    svc = services(context.bot_data)
    if message.photo:
        media = message.photo[-1]  # the largest size; [0] is a ~90 px thumbnail
    elif _is_image_document(message):
        media = message.document
    else:
        await message.reply_text(texts.DOCUMENT)
        return
    if media.file_size and media.file_size > svc.settings.max_download_mb * 1024 * 1024:
        await message.reply_text(texts.TOO_BIG_FILE)
        return
    data = await download(context.bot, media.file_id, svc.settings)
    try:
        prediction, predictor = await svc.holder.predict(data)
    except BadImage as exc:
        logger.info("bad image: %s", exc.reason)
        await message.reply_text(texts.BAD_IMAGE.get(exc.reason, texts.BAD_IMAGE_DEFAULT))
        return
    record = Pending(file_id=media.file_id, prediction=prediction, model_version=predictor.version)
    key = message.message_id
    remember(context.chat_data, key, record)
    reply = await message.reply_text(
        texts.answer(prediction),
        do_quote=True,
        reply_markup=feedback_flow.first_keyboard(key),
    )
    record.answer_id = reply.message_id


async def other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, videos, other files: a short friendly answer."""
    message = update.effective_message
    if message.sticker:
        text = texts.STICKER
    elif message.video or message.animation or message.video_note:
        text = texts.VIDEO
    elif message.document:
        text = texts.DOCUMENT
    else:
        text = texts.TEXT
    await message.reply_text(text)


async def text_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: a typed breed when one is awaited, else a hint."""
    if await feedback_flow.typed_breed(update, context):
        return
    await update.effective_message.reply_text(texts.TEXT)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one error handler: log it, tell the user something went wrong, keep running."""
    logger.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat:
        try:
            await context.bot.send_message(update.effective_chat.id, texts.ERROR)
        except Exception:  # telling the user is best effort; the error is already logged
            logger.warning("could not tell the user about the error", exc_info=True)
