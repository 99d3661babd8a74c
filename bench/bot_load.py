"""Load on the bot: N chats x M real photos at once through the Bot API stub.

The bot runs as its own process (`python -m bot`, long polling) against the stub from
tests/bot/telegram_stub.py; every chat sends its photos one after another (the next one when the
previous is answered), all chats at the same time. Reports p50/p95 time from update to reply,
checks every update is answered exactly once, and reads the bot's peak RSS (VmHWM).

    python -m bench.bot_load [--chats 20] [--photos 10] [--model models]

Two runs: without the client-side send throttle (the bot's own capacity) and with the default
30 messages/s overall cap that Telegram asks bots to respect (with 20 chats waiting at once,
that cap alone puts the median near 20/30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from bot.settings import resolve_model_dir
from tests.bot.telegram_stub import TelegramStub

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "imagewoof" / "Images"
OUT = ROOT / "bench" / "out" / "bot_load.md"
P95_TARGET_MS, RSS_TARGET_MB = 250.0, 300.0


@dataclass
class Result:
    """What one run measured."""

    chats: int
    photos: int
    answered: int
    duplicates: int
    latencies_ms: list[float]
    peak_rss_mb: float
    wall_s: float
    load_before: float
    bot_cpu_ms: float  # bot process CPU time per photo
    stub_cpu_ms: float  # this process (stub + clients) CPU time per photo


def real_photos(count: int) -> list[bytes]:
    """`count` ImageWoof photos, round-robin over the breeds."""
    folders = sorted(p for p in PHOTOS.iterdir() if p.is_dir())
    per_breed = -(-count // len(folders))
    lists = [sorted(f.iterdir())[:per_breed] for f in folders]
    ordered = [lst[i] for i in range(per_breed) for lst in lists if i < len(lst)]
    return [p.read_bytes() for p in ordered[:count]]


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process: its peak resident memory, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _chat(stub: TelegramStub, chat: int, photos: list[bytes]) -> list[float]:
    latencies = []
    for photo in photos:
        update = stub.photo(chat, photo)
        reply = await stub.wait_reply(update["message"]["message_id"])
        latencies.append((reply["_at"] - stub.state.queued_at[update["update_id"]]) * 1000)
    return latencies


async def run(
    chats: int, per_chat: int, model: str, send_rate: float, timeout_s: float = 300
) -> Result:
    """Start the stub and the bot process, send the photos, collect the numbers."""
    photos = real_photos(chats * per_chat)
    stub = await TelegramStub().start()
    feedback = tempfile.mkdtemp(prefix="bot-load-")
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": stub.token,
        "TELEGRAM_API_URL": stub.api_url,
        "DOGGO_MODEL_DIR": model,
        "DOGGO_FEEDBACK_URL": f"file://{feedback}",
        "DOGGO_SEND_RATE": str(send_rate),
    }
    load_before = os.getloadavg()[0]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--log-level", "WARNING", cwd=ROOT, env=env
    )
    try:
        await stub.wait_calls("getUpdates", timeout=120)
        # One warm-up photo (first inference allocates ONNX Runtime's buffers).
        await _chat(stub, 10_000, photos[:1])
        bot, me = psutil.Process(proc.pid), psutil.Process()
        bot_cpu, my_cpu = sum(bot.cpu_times()[:2]), sum(me.cpu_times()[:2])
        start = time.perf_counter()
        jobs = [
            _chat(stub, chat, photos[(chat - 1) * per_chat : chat * per_chat])
            for chat in range(1, chats + 1)
        ]
        per_chat_latencies = await asyncio.wait_for(asyncio.gather(*jobs), timeout_s)
        wall = time.perf_counter() - start
        bot_cpu, my_cpu = sum(bot.cpu_times()[:2]) - bot_cpu, sum(me.cpu_times()[:2]) - my_cpu
        await asyncio.sleep(0.5)  # would-be duplicate answers have time to arrive
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        await proc.wait()
        await stub.stop()
    replies = [m for m in stub.sent() if m["chat"]["id"] != 10_000]
    keys = [m["_reply_to"] for m in replies]
    return Result(
        chats=chats,
        photos=chats * per_chat,
        answered=len(set(keys)),
        duplicates=len(keys) - len(set(keys)),
        latencies_ms=[x for lat in per_chat_latencies for x in lat],
        peak_rss_mb=rss,
        wall_s=wall,
        load_before=load_before,
        bot_cpu_ms=bot_cpu / (chats * per_chat) * 1000,
        stub_cpu_ms=my_cpu / (chats * per_chat) * 1000,
    )


def _rows(result: Result) -> list[tuple[str, str]]:
    lat = np.asarray(result.latencies_ms)
    ok = "ok" if result.answered == result.photos and result.duplicates == 0 else "FAIL"
    return [
        (
            "photos (chats x photos each)",
            f"{result.photos} ({result.chats} x {result.photos // result.chats})",
        ),
        (
            "answered exactly once",
            f"{result.answered}/{result.photos}, {result.duplicates} dup. ({ok})",
        ),
        ("update -> reply p50", f"{np.percentile(lat, 50):.0f} ms"),
        ("update -> reply p95 (target <= 250 ms)", f"{np.percentile(lat, 95):.0f} ms"),
        ("update -> reply max", f"{lat.max():.0f} ms"),
        ("throughput", f"{result.photos / result.wall_s:.1f} photos/s"),
        (
            "bot CPU per photo (stub + clients)",
            f"{result.bot_cpu_ms:.1f} ms ({result.stub_cpu_ms:.1f} ms)",
        ),
        ("bot peak RSS, VmHWM (target <= 300 MB)", f"{result.peak_rss_mb:.0f} MB"),
        ("load average before the run", f"{result.load_before:.1f} on {os.cpu_count()} CPUs"),
    ]


def table(results: dict[str, Result]) -> str:
    """The markdown table for the README: one column per configuration."""
    columns = {name: dict(_rows(result)) for name, result in results.items()}
    keys = [k for k, _ in _rows(next(iter(results.values())))]
    lines = [
        "| measure | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        *(f"| {k} | " + " | ".join(col[k] for col in columns.values()) + " |" for k in keys),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the load test; print the table and write bench/out/bot_load.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--photos", type=int, default=10, help="photos per chat")
    parser.add_argument("--model", default="models", help="model dir (models -> models/baseline)")
    args = parser.parse_args(argv)
    if not (resolve_model_dir(Path(args.model)) / "model.onnx").exists():
        raise SystemExit(f"no model in {args.model}: run `dvc repro baseline` first")
    results = {
        # The bot's own capacity: no client-side throttle of outgoing messages.
        "DOGGO_SEND_RATE=0": asyncio.run(run(args.chats, args.photos, args.model, 0)),
        # The default: at most 30 messages/s overall, as Telegram asks of bots.
        "DOGGO_SEND_RATE=30 (default)": asyncio.run(run(args.chats, args.photos, args.model, 30)),
    }
    text = table(results)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    if any(r.answered != r.photos or r.duplicates for r in results.values()):
        raise SystemExit("not every update was answered exactly once")


if __name__ == "__main__":
    main()
