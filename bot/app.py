"""The python-telegram-bot Application: built in a function, run by long polling or a webhook."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.error import BadRequest, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import feedback_flow, guards, handlers
from bot.feedback import FeedbackStore
from bot.model_holder import ModelHolder, ReloadError
from bot.settings import Settings
from bot.state import SERVICES, Services

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class RetryingLimiter(AIORateLimiter):
    """PTB's limiter honours 429 `retry_after`; this adds retries with backoff for timeouts and 5xx.

    A retried `sendMessage` whose first attempt timed out after Telegram got it can arrive twice;
    Telegram has no idempotency key, so that is the price of not losing answers.
    """

    def __init__(self, retries: int, send_rate: float, backoff_s: float = 0.5) -> None:
        super().__init__(overall_max_rate=send_rate, max_retries=retries)
        self.retries, self.backoff_s = retries, backoff_s

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        """Run one Bot API call; retry NetworkError (not BadRequest) with exponential backoff."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except BadRequest:
                raise
            except NetworkError as exc:
                if attempt == self.retries:
                    raise
                logger.warning(
                    "%s failed (%s); retry %d in %.1fs", endpoint, exc, attempt + 1, delay
                )
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def build_application(
    settings: Settings, holder: ModelHolder, store: FeedbackStore, webhook: bool = False
) -> Application:
    """The Application with every handler registered; `webhook` leaves out the polling Updater."""
    builder = (
        Application.builder()
        .token(settings.token.get_secret_value())
        .base_url(settings.base_url)
        .base_file_url(settings.base_file_url)
        .rate_limiter(
            RetryingLimiter(settings.send_retries, settings.send_rate, settings.send_backoff_s)
        )
        .connect_timeout(settings.request_timeout_s)
        .read_timeout(settings.request_timeout_s)
        .write_timeout(settings.request_timeout_s)
        .media_write_timeout(settings.request_timeout_s)
        # httpcore checks every idle connection of its pool on each request: a small pool
        # (PTB's default is 256) keeps that cheap under load; requests wait for a free one.
        .connection_pool_size(8)
        .pool_timeout(settings.request_timeout_s)
        .concurrent_updates(64)
    )
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    application.bot_data[SERVICES] = Services(settings=settings, holder=holder, store=store)

    new_messages = filters.UpdateType.MESSAGE
    application.add_handler(TypeHandler(Update, guards.drop_duplicates), group=-2)
    application.add_handler(TypeHandler(Update, guards.rate_limit), group=-1)
    application.add_handler(CommandHandler("start", handlers.start))
    application.add_handler(CommandHandler("help", handlers.help_command))
    application.add_handler(CommandHandler("model", handlers.model_command))
    application.add_handler(CommandHandler("forget", handlers.forget))
    application.add_handler(CommandHandler("reload", handlers.reload_model))
    application.add_handler(
        MessageHandler(new_messages & (filters.PHOTO | filters.Document.ALL), handlers.photo)
    )
    application.add_handler(
        MessageHandler(new_messages & filters.TEXT & ~filters.COMMAND, handlers.text_message)
    )
    application.add_handler(CallbackQueryHandler(feedback_flow.on_button))
    application.add_handler(MessageHandler(new_messages, handlers.other_message))
    application.add_error_handler(handlers.on_error)
    return application


def webhook_app(application: Application, secret: str, path: str) -> web.Application:
    """aiohttp app: POST `path` (secret checked) feeds PTB's update queue; GET /healthz probes."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            logger.warning("webhook request with a missing or wrong secret from %s", request.remote)
            return web.Response(status=403, text="forbidden")
        try:
            payload = await request.json()
            update = Update.de_json(payload, application.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400, text="not an update")
        await application.update_queue.put(update)
        return web.Response(text="ok")

    async def healthz(request: web.Request) -> web.Response:
        if not application.running:
            return web.json_response({"ok": False}, status=503)
        holder = application.bot_data[SERVICES].holder
        return web.json_response({"ok": True, "model": holder.predictor.version})

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post(path, receive)
    app.router.add_get("/healthz", healthz)
    return app


def webhook_path(url: str) -> str:
    """The path part of WEBHOOK_URL (`https://bot.example.com/telegram` -> `/telegram`)."""
    return urlsplit(url).path or "/"


async def serve(application: Application, settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set: a webhook server when WEBHOOK_URL is set, else long polling."""
    runner: web.AppRunner | None = None
    async with application:
        await application.start()
        if settings.webhook_url:
            secret = settings.webhook_secret.get_secret_value()
            path = webhook_path(settings.webhook_url)
            runner = web.AppRunner(webhook_app(application, secret, path), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.webhook_listen, settings.webhook_port).start()
            await application.bot.set_webhook(
                settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
            )
            logger.info(
                "webhook mode on %s:%d%s", settings.webhook_listen, settings.webhook_port, path
            )
        else:
            await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)
            logger.info("long polling %s", settings.api_url)
        try:
            await stop.wait()
        finally:
            if runner is not None:
                await runner.cleanup()
            elif application.updater and application.updater.running:
                await application.updater.stop()
            await application.stop()


async def reload_logged(holder: ModelHolder) -> None:
    """SIGHUP: reload the model; a failure is logged and the old model keeps answering."""
    try:
        await holder.reload()
    except ReloadError as exc:
        logger.error("reload on SIGHUP refused, old model keeps answering: %s", exc)


async def run(application: Application, settings: Settings) -> None:
    """`serve` with signals: SIGINT/SIGTERM stop, SIGHUP reloads the model."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    holder = application.bot_data[SERVICES].holder
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_logged(holder)))
    await serve(application, settings, stop)
