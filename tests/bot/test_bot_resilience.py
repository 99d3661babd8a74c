"""Duplicates, Telegram errors, rate limits, reloads, webhook secrets and the token in logs."""

from __future__ import annotations

import asyncio
import io
import logging
import socket

import aiohttp
import pytest

from bot import texts
from bot.logs import REDACTED, RedactToken, protect
from tests.bot.conftest import bot_settings, running_bot, solid
from tests.bot.tiny_model import LABELS, write_tiny_model

pytestmark = pytest.mark.anyio
RED = (250, 10, 10)


async def test_duplicate_update_is_answered_once(stub, tiny_model, tmp_path):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        update = stub.photo(1, solid(RED))
        stub.push(dict(update))  # Telegram re-sends the same update_id
        await stub.wait_sent(1)
        stub.text(1, "/start")
        await stub.wait_sent(1, 2)
    assert len(stub.sent(1)) == 2
    assert len(stub.calls("getFile")) == 1


@pytest.mark.parametrize(
    "fault", [{"kind": "429", "retry_after": 1}, {"kind": "500"}, {"kind": "502"}, {"kind": "drop"}]
)
async def test_failed_send_is_retried_and_arrives_once(stub, tiny_model, tmp_path, fault):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        stub.fail("sendMessage", **fault)
        stub.photo(1, solid(RED))
        [reply] = await stub.wait_sent(1)
        await asyncio.sleep(0.3)
    assert reply["text"].startswith("🐶 1. Red setter")
    assert len(stub.calls("sendMessage")) == 2 and len(stub.sent(1)) == 1


async def test_timeout_is_retried(stub, tiny_model, tmp_path):
    settings = bot_settings(stub, tiny_model, tmp_path / "fb", request_timeout_s=0.3)
    async with running_bot(settings, stub):
        stub.fail("getFile", "slow", delay_s=1.0)
        stub.photo(1, solid(RED))
        [reply] = await stub.wait_sent(1)
    assert reply["text"].startswith("🐶") and len(stub.calls("getFile")) == 2


@pytest.mark.parametrize("kind", ["500", "drop"])
async def test_failed_download_is_retried(stub, tiny_model, tmp_path, kind):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        stub.fail("download", kind, times=2)
        stub.photo(1, solid(RED))
        [reply] = await stub.wait_sent(1)
    assert reply["text"].startswith("🐶 1. Red setter") and len(stub.calls("download")) == 3


async def test_error_handler_tells_the_user_and_the_bot_keeps_going(stub, tiny_model, tmp_path):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb", send_retries=1), stub):
        stub.fail("getFile", "500", times=2)  # more failures than retries
        stub.photo(1, solid(RED))
        [error] = await stub.wait_sent(1)
        stub.photo(1, solid(RED))
        sent = await stub.wait_sent(1, 2)
    assert error["text"] == texts.ERROR
    assert sent[-1]["text"].startswith("🐶 1. Red setter")


async def test_per_chat_rate_limit(stub, tiny_model, tmp_path):
    settings = bot_settings(stub, tiny_model, tmp_path / "fb", rate_limit=2, rate_window_s=60)
    async with running_bot(settings, stub):
        for _ in range(5):
            stub.photo(1, solid(RED))
        stub.photo(2, solid(RED))
        await stub.wait_sent(2)
        await stub.wait_sent(1, 3)
        await asyncio.sleep(0.3)
    texts_1 = [m["text"] for m in stub.sent(1)]
    assert texts_1.count(texts.RATE_LIMITED) == 1 and len(texts_1) == 3
    assert len(stub.calls("getFile")) == 3


async def test_reload_keeps_the_old_model_until_a_new_one_works(stub, tmp_path):
    model_dir = write_tiny_model(tmp_path / "model")
    settings = bot_settings(stub, model_dir, tmp_path / "fb", admin_ids=frozenset({1}))
    async with running_bot(settings, stub) as app:
        old = app.bot_data["services"].holder.predictor.version
        (model_dir / "model.onnx").write_bytes(b"this is not an onnx model")
        stub.text(1, "/reload")
        [failed] = await stub.wait_sent(1)
        stub.photo(1, solid(RED))
        sent = await stub.wait_sent(1, 2)
        assert "still serving " + old in failed["text"]
        assert sent[-1]["text"].startswith("🐶 1. Red setter")
        stub.text(2, "/reload")  # not an admin
        assert (await stub.wait_sent(2))[0]["text"] == texts.NOT_ADMIN
        relabelled = [{"name": "rusty_hound", "display": "Rusty hound", "wnid": None}, *LABELS[1:]]
        write_tiny_model(model_dir, labels=relabelled, size=40, resize=44)
        stub.text(1, "/reload")
        sent = await stub.wait_sent(1, 3)
        new = app.bot_data["services"].holder.predictor.version
        stub.photo(1, solid(RED))
        sent = await stub.wait_sent(1, 4)
    assert new != old and texts.RELOADED.format(version=new, n_breeds=3) in [
        m["text"] for m in sent
    ]
    assert sent[-1]["text"].startswith("🐶 1. Rusty hound")


def test_redaction_filter_covers_args_and_tracebacks():
    token = "123:SECRET"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", (f"/bot{token}/x",), None)
    try:
        raise RuntimeError(f"failed https://api/bot{token}/getMe")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactToken(token).filter(record)
    assert token not in record.getMessage() and token not in record.exc_text
    assert REDACTED in record.getMessage() and REDACTED in record.exc_text


async def test_token_never_reaches_the_log(stub, tiny_model, tmp_path):
    stream = io.StringIO()
    handler = protect(logging.StreamHandler(stream), stub.token)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # PTB logs the API URL, with the token, at DEBUG
    try:
        async with running_bot(
            bot_settings(stub, tiny_model, tmp_path / "fb", send_retries=0), stub
        ):
            stub.fail("getFile", "drop")  # an error with a traceback full of URLs
            stub.photo(1, solid(RED))
            await stub.wait_sent(1)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    log = stream.getvalue()
    assert "error while handling an update" in log
    assert REDACTED in log  # the token would have been there
    assert stub.token not in log and stub.token.split(":")[1] not in log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_webhook_checks_the_secret_and_serves_healthz(stub, tiny_model, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    settings = bot_settings(
        stub,
        tiny_model,
        tmp_path / "fb",
        webhook_url=url,
        webhook_secret="s3cret-value",
        webhook_listen="127.0.0.1",
        webhook_port=port,
    )
    update = {
        "update_id": 555,
        "message": {
            "message_id": 9,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "from": {"id": 1, "is_bot": False, "first_name": "a"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    header = "X-Telegram-Bot-Api-Secret-Token"
    async with running_bot(settings, stub) as app, aiohttp.ClientSession() as http:
        version = app.bot_data["services"].holder.predictor.version
        async with http.post(url, json=update) as missing:
            assert missing.status == 403
        async with http.post(url, json=update, headers={header: "wrong"}) as wrong:
            assert wrong.status == 403
        for _ in range(2):  # the second is Telegram re-sending: answered once
            async with http.post(url, json=update, headers={header: "s3cret-value"}) as ok:
                assert ok.status == 200
        async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
            assert health.status == 200 and (await health.json())["model"] == version
        await stub.wait_sent(1)
        await asyncio.sleep(0.3)
    assert stub.state.webhook["url"] == url and stub.state.webhook["secret_token"] == "s3cret-value"
    assert [m["text"] for m in stub.sent(1)] == [texts.START]
    assert stub.calls("getUpdates") == []
