"""Photos, files and other messages through the real bot and the Bot API stub (tiny model)."""

from __future__ import annotations

import pytest
from PIL import Image

from bot import texts
from bot.feedback_flow import MAX_CALLBACK_BYTES
from tests.bot.conftest import bot_settings, image_bytes, keyboard_data, running_bot, solid

pytestmark = pytest.mark.anyio

RED, GREEN, BLACK, GREY = (250, 10, 10), (10, 240, 10), (0, 0, 0), (128, 128, 128)


async def test_photo_uses_the_largest_size_and_replies_with_top3(stub, tiny_model, tmp_path):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        update = stub.photo(1, solid(RED), thumb=b"not an image at all")
        [reply] = await stub.wait_sent(1)
    assert reply["_reply_to"] == update["message"]["message_id"]
    lines = reply["text"].splitlines()
    assert lines[0].endswith("1. Red setter: 100%") and len(lines) == 3
    downloaded = [c.params["file_id"] for c in stub.calls("download")]
    assert downloaded == [update["message"]["photo"][-1]["file_id"]]
    assert keyboard_data(reply) == [
        f"ok:{update['message']['message_id']}",
        f"no:{update['message']['message_id']}",
    ]


async def test_verdicts_not_a_dog_and_unsure(stub, tiny_model, tmp_path):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        stub.photo(1, solid(BLACK))
        [dark] = await stub.wait_sent(1)
        stub.photo(2, solid(GREY))
        [grey] = await stub.wait_sent(2)
    assert "not a dog" in dark["text"]
    assert "not sure — maybe a mix of" in grey["text"]


@pytest.mark.parametrize(
    ("make", "mime", "expected"),
    [
        # PNG with alpha: transparent corner composited on white, the rest stays red.
        (lambda: _rgba_png(), "image/png", "1. Red setter"),
        # CMYK JPEG: converted to RGB before the model sees it.
        (
            lambda: image_bytes(Image.new("CMYK", (64, 48), (230, 0, 230, 0))),
            "image/jpeg",
            "1. Green terrier",
        ),
        # Decompression bomb: 64 megapixels of 1-bit PNG (a few KB) refused from the header.
        (
            lambda: image_bytes(Image.new("1", (8000, 8000)), "PNG"),
            "image/png",
            texts.BAD_IMAGE["too_large"],
        ),
        (lambda: solid(RED)[:300], "image/jpeg", texts.BAD_IMAGE_DEFAULT),
        (lambda: b"\x00garbage" * 50, "image/jpeg", texts.BAD_IMAGE_DEFAULT),
    ],
    ids=["png-alpha", "cmyk", "bomb", "truncated", "garbage"],
)
async def test_image_documents(stub, tiny_model, tmp_path, make, mime, expected):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        stub.document(1, make(), mime, "photo.bin")
        [reply] = await stub.wait_sent(1)
    assert expected in reply["text"]


def _rgba_png() -> bytes:
    img = Image.new("RGBA", (64, 48), (250, 10, 10, 255))
    img.paste((0, 0, 0, 0), (0, 0, 16, 12))
    return image_bytes(img, "PNG")


async def test_other_messages_get_a_friendly_answer(stub, tiny_model, tmp_path):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        sticker = {
            **stub.add_file(b"webp"),
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
        stub.message(1, sticker=sticker)
        video = {**stub.add_file(b"mp4"), "width": 640, "height": 480, "duration": 3}
        stub.message(2, video=video)
        stub.text(3, "hello there")
        stub.document(4, b"%PDF-1.4", "application/pdf", "cv.pdf")
        # Over Telegram's 20 MB download limit: answered from file_size, never downloaded.
        stub.document(5, solid(RED), "image/jpeg", "huge.jpg", size=25 * 1024 * 1024)
        answers = {chat: (await stub.wait_sent(chat))[0]["text"] for chat in range(1, 6)}
    assert answers == {
        1: texts.STICKER,
        2: texts.VIDEO,
        3: texts.TEXT,
        4: texts.DOCUMENT,
        5: texts.TOO_BIG_FILE,
    }
    assert stub.calls("getFile") == []


async def test_commands(stub, tiny_model, tmp_path):
    settings = bot_settings(stub, tiny_model, tmp_path / "fb", data_policy="ask")
    async with running_bot(settings, stub) as app:
        version = app.bot_data["services"].holder.predictor.version
        for chat, command in enumerate(["/start", "/help", "/model"], 1):
            stub.text(chat, command)
        start, help_, model = [(await stub.wait_sent(chat))[0]["text"] for chat in (1, 2, 3)]
    assert start == texts.START
    assert "I know 3 breeds" in help_ and "/forget" in help_ and "I ask once" in help_
    assert f"Model: baseline {version}" in model and "Breeds: 3" in model


async def test_model_reads_eval_metrics_of_the_same_model(stub, tmp_path):
    import json

    from tests.bot.tiny_model import write_tiny_model

    model_dir = write_tiny_model(tmp_path / "repo" / "models")
    version = json.loads((model_dir / "model.json").read_text())["version"]
    (tmp_path / "repo" / "eval").mkdir()
    metrics = {"top1": 0.912, "top3": 0.99, "model": {"version": version}, "per_breed": {"x": 0.1}}
    (tmp_path / "repo" / "eval" / "metrics.json").write_text(json.dumps(metrics))
    async with running_bot(bot_settings(stub, model_dir, tmp_path / "fb"), stub):
        stub.text(1, "/model")
        [reply] = await stub.wait_sent(1)
    assert "Test accuracy: 91.2%" in reply["text"]


async def test_every_callback_fits_in_64_bytes(stub, tiny_model, tmp_path):
    settings = bot_settings(stub, tiny_model, tmp_path / "fb", data_policy="ask")
    async with running_bot(settings, stub):
        stub.photo(1, solid(RED))
        [answer] = await stub.wait_sent(1)
        key = answer["_reply_to"]
        stub.press(1, answer, f"no:{key}")
        await stub.wait_calls("editMessageReplyMarkup")
        stub.press(1, answer, f"other:{key}")
        await stub.wait_sent(1, 2)
        stub.text(1, "a very long breed name that nobody has heard of before " * 3)
        await stub.wait_sent(1, 3)
    edits = [c.params.get("reply_markup") or {} for c in stub.calls("editMessageReplyMarkup")]
    sends = [c.params.get("reply_markup") or {} for c in stub.calls("sendMessage")]
    markups = sends + edits
    data = [
        b["callback_data"] for m in markups for row in m.get("inline_keyboard", []) for b in row
    ]
    assert len(data) >= 8
    assert all(len(d.encode()) <= MAX_CALLBACK_BYTES for d in data)
