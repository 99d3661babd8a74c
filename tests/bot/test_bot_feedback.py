"""The feedback conversation and the store: exactly one photo + sidecar, consent, /forget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bot import texts
from bot.feedback import FeedbackStore, as_jpeg
from bot.feedback_flow import match_breed
from tests.bot.conftest import bot_settings, image_bytes, keyboard_data, running_bot, solid

RED = (250, 10, 10)
CHAT = 987654321


def kept(root: Path) -> list[str]:
    """Every file in the store but the book-keeping dot-files, relative to it."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


async def _answer(stub, chat: int, photo: bytes) -> tuple[dict, int]:
    update = stub.photo(chat, photo)
    key = update["message"]["message_id"]
    sent = await stub.wait_sent(chat, len(stub.sent(chat)) + 1)
    return sent[-1], key


@pytest.mark.anyio
async def test_wrong_then_typed_new_breed_keeps_one_photo_and_sidecar(stub, tiny_model, tmp_path):
    store_dir = tmp_path / "fb"
    photo = solid(RED)
    async with running_bot(bot_settings(stub, tiny_model, store_dir), stub) as app:
        version = app.bot_data["services"].holder.predictor.version
        answer, key = await _answer(stub, CHAT, photo)
        stub.press(CHAT, answer, f"no:{key}")
        [edit] = await stub.wait_calls("editMessageReplyMarkup")
        picks = [
            b["callback_data"]
            for row in edit.params["reply_markup"]["inline_keyboard"]
            for b in row
        ]
        assert picks == [f"pick:{key}:0", f"pick:{key}:1", f"pick:{key}:2", f"other:{key}"]
        stub.press(CHAT, answer, f"other:{key}")
        sent = await stub.wait_sent(CHAT, 2)
        assert sent[-1]["text"] == texts.TYPE_BREED
        stub.text(CHAT, "Golden Retriever")
        sent = await stub.wait_sent(CHAT, 3)
        assert sent[-1]["text"] == texts.NEW_BREED.format(typed="Golden retriever")
        assert keyboard_data(sent[-1]) == [f"new:{key}", f"cancel:{key}"]
        stub.press(CHAT, sent[-1], f"new:{key}")
        sent = await stub.wait_sent(CHAT, 4)
        # A second press on the same answer must not keep the photo again.
        stub.press(CHAT, answer, f"ok:{key}")
        await stub.wait_calls("answerCallbackQuery", 4)
    assert sent[-1]["text"] == texts.THANKS_KEPT.format(breed="Golden retriever")
    files = kept(store_dir)
    assert len(files) == 2 and files[0].startswith("golden_retriever/golden_retriever_")
    assert files[0].endswith(".jpg") and files[1] == files[0][:-4] + ".json"
    assert (store_dir / files[0]).read_bytes() == photo
    sidecar = json.loads((store_dir / files[1]).read_text())
    assert sidecar["breed"] == "golden_retriever" and sidecar["prediction"] == "red_setter"
    assert sidecar["model_version"] == version and sidecar["source"] == "telegram"
    assert sidecar["confidence"] > 0.99 and sidecar["time"]
    assert str(CHAT) not in (store_dir / files[1]).read_text() and len(sidecar["chat"]) == 32


@pytest.mark.anyio
async def test_typed_close_match_and_pick(stub, tiny_model, tmp_path):
    store_dir = tmp_path / "fb"
    async with running_bot(bot_settings(stub, tiny_model, store_dir), stub):
        answer, key = await _answer(stub, 1, solid(RED))
        stub.press(1, answer, f"other:{key}")
        await stub.wait_sent(1, 2)
        stub.text(1, "blue heler")
        sent = await stub.wait_sent(1, 3)
        assert "Did you mean Blue heeler?" in sent[-1]["text"]
        stub.press(1, sent[-1], f"known:{key}")
        await stub.wait_sent(1, 4)
        answer2, key2 = await _answer(stub, 1, solid((240, 30, 30)))
        stub.press(1, answer2, f"pick:{key2}:2")
        await stub.wait_sent(1, 6)
    assert [f.split("/")[0] for f in kept(store_dir)] == ["blue_heeler"] * 2 + ["green_terrier"] * 2


@pytest.mark.anyio
async def test_ask_policy_asks_once_and_off_keeps_nothing(stub, tiny_model, tmp_path):
    store_dir = tmp_path / "fb"
    async with running_bot(bot_settings(stub, tiny_model, store_dir, data_policy="ask"), stub):
        answer, key = await _answer(stub, 1, solid(RED))
        stub.press(1, answer, f"ok:{key}")
        sent = await stub.wait_sent(1, 2)
        assert sent[-1]["text"] == texts.CONSENT and kept(store_dir) == []
        stub.press(1, sent[-1], f"consent:{key}:y")
        sent = await stub.wait_sent(1, 3)
        assert sent[-1]["text"] == texts.THANKS_KEPT.format(breed="Red setter")
        answer, key = await _answer(stub, 1, solid((200, 0, 0)))
        stub.press(1, answer, f"ok:{key}")  # consent given: kept without asking again
        sent = await stub.wait_sent(1, 5)
        assert sent[-1]["text"].startswith("Thanks! I kept")
        answer, key = await _answer(stub, 2, solid(RED))
        stub.press(2, answer, f"ok:{key}")
        sent = await stub.wait_sent(2, 2)
        stub.press(2, sent[-1], f"consent:{key}:n")
        sent = await stub.wait_sent(2, 3)
        assert sent[-1]["text"] == texts.CONSENT_DECLINED
    assert len(kept(store_dir)) == 4
    async with running_bot(
        bot_settings(stub, tiny_model, tmp_path / "off", data_policy="off"), stub
    ):
        answer, key = await _answer(stub, 3, solid(RED))
        stub.press(3, answer, f"ok:{key}")
        sent = await stub.wait_sent(3, 2)
    assert sent[-1]["text"] == texts.THANKS and not (tmp_path / "off").exists()


@pytest.mark.anyio
async def test_forget_deletes_only_that_users_photos(stub, tiny_model, tmp_path):
    store_dir = tmp_path / "fb"
    async with running_bot(bot_settings(stub, tiny_model, store_dir), stub):
        for chat, color in ((1, (250, 0, 0)), (1, (240, 0, 0)), (2, (230, 0, 0))):
            answer, key = await _answer(stub, chat, solid(color))
            stub.press(chat, answer, f"ok:{key}")
            await stub.wait_sent(chat, len(stub.sent(chat)) + 1)
        assert len(kept(store_dir)) == 6
        stub.text(1, "/forget")
        sent = await stub.wait_sent(1, 5)
    assert sent[-1]["text"] == texts.FORGOTTEN.format(count=2)
    assert len(kept(store_dir)) == 2
    assert FeedbackStore(f"file://{store_dir}", "test-salt").forget(2) == 1


@pytest.mark.anyio
async def test_stale_or_odd_buttons_are_answered_without_errors(stub, tiny_model, tmp_path):
    async with running_bot(bot_settings(stub, tiny_model, tmp_path / "fb"), stub):
        answer, key = await _answer(stub, 1, solid(RED))
        for data in ("x", f"pick:{key}:9", "ok:123456"):
            stub.press(1, answer, data)
        sent = await stub.wait_sent(1, 4)
        await stub.wait_calls("answerCallbackQuery", 3)
    # Updates run concurrently, so the three answers may come in any order.
    answers = sorted(m["text"] for m in sent[1:])
    assert answers == sorted([texts.EXPIRED, texts.EXPIRED, texts.CANCELLED])
    assert texts.ERROR not in [m["text"] for m in sent] and kept(tmp_path / "fb") == []


def test_store_writes_jpeg_then_sidecar_in_memory_fs():
    store = FeedbackStore("memory://doggo-test-store", salt="s")
    png = image_bytes(Image.new("RGBA", (40, 30), (0, 0, 255, 128)), "PNG")
    path = store.keep(png, "Blue Heeler", 5, "abc123", "blue_heeler", 0.9)
    assert path.startswith("/doggo-test-store/blue_heeler/blue_heeler_") and path.endswith(".jpg")
    assert store.fs.cat_file(path)[:3] == b"\xff\xd8\xff"  # re-encoded as JPEG
    assert store.sidecars() == [path[:-4] + ".json"]
    assert store.chat_hash(5) == FeedbackStore("memory://other", salt="s").chat_hash(5)
    assert store.chat_hash(5) != FeedbackStore("memory://other", salt="t").chat_hash(5)
    assert store.forget(5) == 1 and store.sidecars() == []


def test_local_store_leaves_no_temp_files_and_keeps_its_salt(tmp_path):
    store = FeedbackStore(f"file://{tmp_path}")
    store.keep(solid(RED), "beagle", 1, "v", "beagle", 0.5)
    again = FeedbackStore(f"file://{tmp_path}")
    assert again.chat_hash(1) == store.chat_hash(1)
    assert not [p for p in tmp_path.rglob("*.tmp-*")]
    assert as_jpeg(solid(RED)) == solid(RED)


def test_match_breed():
    known = ["golden_retriever", "beagle", "shih-tzu"]
    assert match_breed("Golden Retriever", known) == ("golden_retriever", None)
    assert match_breed("goldn retriever", known) == (None, "golden_retriever")
    assert match_breed("Shih Tzu", known) == (None, "shih-tzu")
    assert match_breed("axolotl", known) == (None, None)
