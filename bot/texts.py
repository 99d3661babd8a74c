"""Everything the bot says, in one place (plain text: no markup to escape)."""

from __future__ import annotations

from bot.predictor import Prediction

START = (
    "Hi! I recognise dog breeds. Send me a photo of a dog (as a photo or as a file) "
    "and I'll tell you the three most likely breeds. /help says more."
)

_POLICY = {
    "off": "I don't keep any photos: your corrections only help in this chat.",
    "ask": (
        "When you tell me whether I was right, I can keep that photo with the right breed to "
        "learn from it. I ask once before keeping anything. /forget deletes everything I kept "
        "from you."
    ),
    "on": (
        "When you tell me whether I was right, I keep that photo with the right breed to learn "
        "from it (no name, no chat id: only a salted hash of it). /forget deletes everything "
        "I kept from you."
    ),
}


def help_text(policy: str, n_breeds: int) -> str:
    """What the bot does, its commands and its data policy."""
    return (
        f"Send me a dog photo and I'll name the breed: I know {n_breeds} breeds. Photos sent "
        "as files work too (up to 20 MB). Under each answer you can tell me if I was right.\n\n"
        "/model: which model answers and how good it is\n"
        "/forget: delete every photo I kept from you\n"
        "/help: this message\n\n"
        f"Your data: {_POLICY[policy]}"
    )


def percent(p: float) -> str:
    """0.873 -> '87%', tiny values -> '<1%'."""
    return "<1%" if p < 0.005 else f"{p * 100:.0f}%"


def answer(prediction: Prediction) -> str:
    """The reply to a photo: top-3 breeds with percentages, or why there is none."""
    lines = [
        f"{i}. {b.display}: {percent(b.probability)}" for i, b in enumerate(prediction.breeds, 1)
    ]
    if prediction.verdict == "not_a_dog":
        return (
            "I think this is not a dog "
            f"(dog: {percent(prediction.dog_probability)}). Send me a dog photo!"
        )
    if prediction.verdict == "unsure":
        names = " and ".join(b.display for b in prediction.breeds[:2])
        return "🤔 I'm not sure — maybe a mix of " + names + "?\n" + "\n".join(lines)
    return "🐶 " + "\n".join(lines)


def model_info(name: str, version: str, n_breeds: int, accuracy: float | None) -> str:
    """The /model answer."""
    score = f"{accuracy * 100:.1f}% top-1 on its test photos" if accuracy is not None else "unknown"
    return f"Model: {name} {version}\nBreeds: {n_breeds}\nTest accuracy: {score}"


BAD_IMAGE = {
    "too_large": "That image is too big for me (too many pixels). Could you send a smaller one?",
    "unsupported_format": "I can't read that image format. JPEG, PNG or WebP work best.",
}
BAD_IMAGE_DEFAULT = "I couldn't read that image; it may be damaged. Could you send another photo?"
TOO_BIG_FILE = "That file is over 20 MB, more than I can download. Could you send it as a photo?"
STICKER = "Nice sticker! But I need a real photo of a dog."
VIDEO = "I can only look at photos, not videos. Send me a still photo of the dog."
DOCUMENT = "That file isn't an image. Send me a photo of a dog."
TEXT = "Send me a photo of a dog and I'll tell you the breed. /help says more."
RATE_LIMITED = "That's a lot of photos at once! Give me a minute, then send the next one."
ERROR = "Sorry, something went wrong on my side. Please try again in a moment."
EXPIRED = "That answer is too old for feedback now. Send the photo again?"

RIGHT, WRONG, OTHER = "✅ Right", "❌ Wrong", "Other breed…"
THANKS = "Thanks for telling me!"
THANKS_KEPT = "Thanks! I kept the photo as {breed} to learn from it."
PICK = "Which breed is it?"
TYPE_BREED = "Type the breed's name (for example: golden retriever)."
DID_YOU_MEAN = "Did you mean {known}? Or is {typed} a breed I don't know yet?"
NEW_BREED = "I don't know the breed {typed}. Keep the photo as a new breed?"
KEEP_NEW = "Yes, keep as {typed}"
CANCEL = "Cancel"
CANCELLED = "OK, I won't keep it."
CONSENT = (
    "May I keep this photo (and the ones you correct later) to learn from it? No name or chat "
    "id is stored, and /forget deletes them at any time."
)
CONSENT_YES, CONSENT_NO = "Yes, keep my photos", "No, thanks"
CONSENT_DECLINED = "OK, I won't keep your photos. Thanks for the feedback!"
FORGOTTEN = "Done: I deleted {count} photo(s) you helped me with."
NOT_ADMIN = "Only the bot's admins can do that."
RELOADED = "Model reloaded: {version} ({n_breeds} breeds)."
RELOAD_FAILED = "The new model did not pass its checks; still serving {version}. ({error})"
