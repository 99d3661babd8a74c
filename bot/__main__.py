"""`python -m bot [--model DIR]`: run the Telegram bot (polling, or a webhook with WEBHOOK_URL)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from bot import logs
from bot.app import build_application, run
from bot.feedback import FeedbackStore
from bot.model_holder import ModelHolder
from bot.settings import Settings, resolve_model_dir

logger = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> None:
    """Read settings, load the model once, run until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("--model", type=Path, help="model directory (default: DOGGO_MODEL_DIR)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    args = parser.parse_args(argv)

    settings = Settings()
    logs.configure(settings.token.get_secret_value(), getattr(logging, args.log_level.upper()))
    model_dir = resolve_model_dir(args.model or settings.model_dir)
    holder = ModelHolder.load(model_dir, settings.threads, settings.max_pixels)
    salt = settings.feedback_salt.get_secret_value() if settings.feedback_salt else None
    store = FeedbackStore(settings.feedback_url, salt)
    logger.info(
        "serving %s %s from %s; data policy %s",
        holder.predictor.name,
        holder.predictor.version,
        model_dir,
        settings.data_policy,
    )
    application = build_application(settings, holder, store, webhook=bool(settings.webhook_url))
    try:
        asyncio.run(run(application, settings))
    finally:
        holder.close()


if __name__ == "__main__":
    main()
