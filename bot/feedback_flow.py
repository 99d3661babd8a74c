"""The feedback conversation under each answer: right / wrong -> which breed -> keep (by policy).

Callback data is `<action>:<photo message id>[:<arg>]`, always well under Telegram's 64 bytes;
everything else (the prediction, the file id, a typed breed) stays in `chat_data`.
"""

from __future__ import annotations

import asyncio
import difflib
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import breeds, texts
from bot.state import AWAITING, Pending, download, pending_of, services

logger = logging.getLogger(__name__)

MAX_CALLBACK_BYTES = 64
CONSENT_KEY = "consent"


def _button(text: str, action: str, key: int, arg: str = "") -> InlineKeyboardButton:
    data = f"{action}:{key}:{arg}" if arg else f"{action}:{key}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return InlineKeyboardButton(text, callback_data=data)


def first_keyboard(key: int) -> InlineKeyboardMarkup:
    """✅ right / ❌ wrong under an answer."""
    return InlineKeyboardMarkup(
        [[_button(texts.RIGHT, "ok", key), _button(texts.WRONG, "no", key)]]
    )


def _pick_keyboard(key: int, record: Pending) -> InlineKeyboardMarkup:
    rows = [
        [_button(b.display, "pick", key, str(i))] for i, b in enumerate(record.prediction.breeds)
    ]
    rows.append([_button(texts.OTHER, "other", key)])
    return InlineKeyboardMarkup(rows)


def match_breed(typed: str, known: list[str]) -> tuple[str | None, str | None]:
    """(exact known slug, None) or (None, close known slug or None) for a typed breed name."""
    name = breeds.slug(typed)
    if name in known:
        return name, None
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return None, close[0] if close else None


async def keep(
    update: Update, context: ContextTypes.DEFAULT_TYPE, key: int, record: Pending, label: str
) -> None:
    """The user named the breed: keep the photo if the data policy (and consent) allow it."""
    svc = services(context.bot_data)
    chat_id = update.effective_chat.id
    record.label = label
    policy = svc.settings.data_policy
    if policy == "ask":
        consent = context.chat_data.get(CONSENT_KEY)
        if consent is None:
            consent = await asyncio.to_thread(svc.store.consent, chat_id)
            context.chat_data[CONSENT_KEY] = consent
        if consent is None:
            keyboard = InlineKeyboardMarkup(
                [
                    [_button(texts.CONSENT_YES, "consent", key, "y")],
                    [_button(texts.CONSENT_NO, "consent", key, "n")],
                ]
            )
            await context.bot.send_message(chat_id, texts.CONSENT, reply_markup=keyboard)
            return
    record.done = True
    if policy == "off" or (policy == "ask" and not context.chat_data.get(CONSENT_KEY)):
        await context.bot.send_message(chat_id, texts.THANKS)
        return
    data = await download(context.bot, record.file_id, svc.settings)
    top = record.prediction.breeds[0]
    await asyncio.to_thread(
        svc.store.keep, data, label, chat_id, record.model_version, top.breed, top.probability
    )
    await context.bot.send_message(chat_id, texts.THANKS_KEPT.format(breed=breeds.display(label)))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every feedback button lands here."""
    query = update.callback_query
    await query.answer()
    action, key_text, *rest = [*(query.data or "").split(":"), ""]
    record = pending_of(context.chat_data).get(int(key_text)) if key_text.isdigit() else None
    if record is None or (record.done and action != "consent"):
        await query.edit_message_reply_markup(None)
        if record is None:
            await context.bot.send_message(update.effective_chat.id, texts.EXPIRED)
        return
    key = int(key_text)
    top = record.prediction.breeds
    if action == "ok":
        await query.edit_message_reply_markup(None)
        if record.prediction.verdict == "not_a_dog":
            record.done = True
            await context.bot.send_message(update.effective_chat.id, texts.THANKS)
        else:
            await keep(update, context, key, record, top[0].breed)
    elif action == "no":
        await query.edit_message_reply_markup(_pick_keyboard(key, record))
    elif action == "pick" and rest[0].isdigit() and int(rest[0]) < len(top):
        await query.edit_message_reply_markup(None)
        await keep(update, context, key, record, top[int(rest[0])].breed)
    elif action == "other":
        await query.edit_message_reply_markup(None)
        context.chat_data[AWAITING] = key
        await context.bot.send_message(update.effective_chat.id, texts.TYPE_BREED)
    elif action == "known" and record.matched:
        await query.edit_message_reply_markup(None)
        await keep(update, context, key, record, record.matched)
    elif action == "new" and record.typed:
        await query.edit_message_reply_markup(None)
        await keep(update, context, key, record, record.typed)
    elif action == "consent" and rest[0] in ("y", "n"):
        await query.edit_message_reply_markup(None)
        await _consent(update, context, key, record, rest[0] == "y")
    else:
        await query.edit_message_reply_markup(None)
        record.done = True
        await context.bot.send_message(update.effective_chat.id, texts.CANCELLED)


async def _consent(
    update: Update, context: ContextTypes.DEFAULT_TYPE, key: int, record: Pending, consent: bool
) -> None:
    store = services(context.bot_data).store
    await asyncio.to_thread(store.set_consent, update.effective_chat.id, consent)
    context.chat_data[CONSENT_KEY] = consent
    if consent and record.label and not record.done:
        await keep(update, context, key, record, record.label)
    else:
        record.done = True
        await context.bot.send_message(update.effective_chat.id, texts.CONSENT_DECLINED)


async def typed_breed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Handle a typed breed name when one is awaited; False when the text is something else."""
    key = context.chat_data.pop(AWAITING, None) if context.chat_data is not None else None
    record = pending_of(context.chat_data).get(key) if key is not None else None
    if record is None:
        return False
    message = update.effective_message
    known = [label.name for label in services(context.bot_data).holder.predictor.labels]
    try:
        exact, close = match_breed(message.text or "", known)
    except ValueError:
        context.chat_data[AWAITING] = key
        await message.reply_text(texts.TYPE_BREED)
        return True
    if exact:
        await keep(update, context, key, record, exact)
        return True
    record.typed, record.matched = breeds.slug(message.text), close
    typed = breeds.display(record.typed)
    rows = [
        [_button(texts.KEEP_NEW.format(typed=typed), "new", key)],
        [_button(texts.CANCEL, "cancel", key)],
    ]
    if close:
        rows.insert(0, [_button(breeds.display(close), "known", key)])
        text = texts.DID_YOU_MEAN.format(known=breeds.display(close), typed=typed)
    else:
        text = texts.NEW_BREED.format(typed=typed)
    await message.reply_text(text, reply_markup=InlineKeyboardMarkup(rows))
    return True
