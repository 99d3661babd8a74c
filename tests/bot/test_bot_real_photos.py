"""Real ImageWoof and not-dog photos through the running bot with the real baseline model."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot import breeds, texts
from bot.predictor import Predictor
from tests.bot.conftest import bot_settings, image_bytes, running_bot
from tests.conftest import require_shared_data

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PER_BREED = 2
# Object classes the ImageNet baseline is sure are not dogs (dog probability < 1%).
NOT_DOGS = ["airliner", "garbage_truck", "grand_piano", "school_bus", "soccer_ball", "teapot"]


def dog_photos() -> list[tuple[str, Path]]:
    """The first photos of each ImageWoof breed, with the breed slug."""
    root = require_shared_data("imagewoof", "Images")
    return [
        (breeds.slug(folder.name), photo)
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for photo in sorted(folder.iterdir())[:PER_BREED]
    ]


async def test_dog_photos_get_their_breed_in_the_top3(stub, baseline_model_dir, tmp_path):
    photos = dog_photos()
    predictor = Predictor.load(baseline_model_dir)
    display = {label.name: label.display for label in predictor.labels}
    async with running_bot(bot_settings(stub, baseline_model_dir, tmp_path / "fb"), stub):
        for chat, (_, photo) in enumerate(photos, 1):
            stub.photo(chat, photo.read_bytes())
        replies = [
            (await stub.wait_sent(chat, timeout=60))[0]["text"]
            for chat in range(1, len(photos) + 1)
        ]
    hits = 0
    for (breed, photo), reply in zip(photos, replies, strict=True):
        # The bot says exactly what the predictor says about the same bytes ...
        assert reply == texts.answer(predictor.predict(photo.read_bytes())), photo.name
        # ... and that is right: the breed is in the top 3 (the baseline's top-3 is ~90% here).
        hits += display[breed] in reply and "not a dog" not in reply
    assert hits >= 0.8 * len(photos), f"{hits}/{len(photos)} in the top 3"


async def test_not_dog_photos(stub, baseline_model_dir, tmp_path):
    root = require_shared_data("not-dogs")
    photos = [next(root.glob(f"*_{name}.JPEG")) for name in NOT_DOGS]
    async with running_bot(bot_settings(stub, baseline_model_dir, tmp_path / "fb"), stub):
        for chat, photo in enumerate(photos, 1):
            stub.photo(chat, photo.read_bytes())
        replies = [
            (await stub.wait_sent(chat, timeout=60))[0]["text"]
            for chat in range(1, len(photos) + 1)
        ]
    assert all(reply.startswith("I think this is not a dog") for reply in replies), replies


async def test_exif_rotated_cmyk_and_transparent_real_photos(stub, baseline_model_dir, tmp_path):
    breed, photo = next((b, p) for b, p in dog_photos() if b == "golden_retriever")
    upright = Image.open(photo).convert("RGB")
    # Pixels stored lying on their side, with the EXIF tag that tells viewers to turn them back.
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rotated = image_bytes(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    cmyk = image_bytes(upright.convert("CMYK"))
    rgba = upright.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 20, 20))  # a transparent corner
    png = image_bytes(rgba, "PNG")
    predictor = Predictor.load(baseline_model_dir)
    expected = texts.answer(predictor.predict(image_bytes(upright)))
    async with running_bot(bot_settings(stub, baseline_model_dir, tmp_path / "fb"), stub):
        stub.photo(1, rotated)
        stub.document(2, cmyk, "image/jpeg", "cmyk.jpg")
        stub.document(3, png, "image/png", "dog.png")
        replies = [(await stub.wait_sent(chat, timeout=60))[0]["text"] for chat in (1, 2, 3)]
    top1 = expected.splitlines()[0]
    assert "Golden retriever" in top1
    assert [reply.splitlines()[0].split(":")[0] for reply in replies] == [top1.split(":")[0]] * 3
