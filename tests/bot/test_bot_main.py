"""`python -m bot` as its own process against the stub: environment settings, SIGHUP, logs."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings, resolve_model_dir
from tests.bot.conftest import solid
from tests.bot.tiny_model import LABELS, write_tiny_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.anyio
async def test_python_m_bot_serves_reloads_on_sighup_and_hides_the_token(stub, tmp_path):
    model_dir = write_tiny_model(tmp_path / "models" / "baseline")  # no trained model: baseline
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": stub.token,
        "TELEGRAM_API_URL": stub.api_url,
        "DOGGO_MODEL_DIR": str(tmp_path / "models"),
        "DOGGO_FEEDBACK_URL": f"file://{tmp_path / 'fb'}",
        "DOGGO_DATA_POLICY": "on",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--log-level",
        "DEBUG",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await stub.wait_calls("getUpdates", timeout=60)
        stub.photo(1, solid((250, 10, 10)))
        await stub.wait_sent(1)
        relabelled = [{"name": "rusty_hound", "display": "Rusty hound", "wnid": None}, *LABELS[1:]]
        write_tiny_model(model_dir, labels=relabelled)
        proc.send_signal(signal.SIGHUP)
        for _ in range(100):  # the reload happens in the background: poll until it answers
            await asyncio.sleep(0.1)
            stub.photo(2, solid((250, 10, 10)))
            sent = await stub.wait_sent(2, len(stub.sent(2)) + 1)
            if "Rusty hound" in sent[-1]["text"]:
                break
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert stub.sent(1)[0]["text"].startswith("🐶 1. Red setter")
    assert stub.sent(2)[-1]["text"].startswith("🐶 1. Rusty hound")
    assert proc.returncode == 0, output
    assert "model reloaded" in output and "<token>" in output
    assert stub.token not in output and stub.token.split(":")[1] not in output


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:abc")
    monkeypatch.setenv("DOGGO_ADMIN_IDS", "11, 22 33")
    monkeypatch.setenv("DOGGO_DATA_POLICY", "off")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://localhost:8081/")
    settings = Settings()
    assert settings.admin_ids == {11, 22, 33} and settings.data_policy == "off"
    assert settings.base_url == "http://localhost:8081/bot{token}"
    assert settings.base_file_url == "http://localhost:8081/file/bot{token}"
    assert "abc" not in repr(settings)
    monkeypatch.setenv("THREADS", "7")  # only the documented names are read
    monkeypatch.setenv("TOKEN", "other")
    assert Settings().threads == 2 and Settings().token.get_secret_value() == "1:abc"
    monkeypatch.setenv("DOGGO_DATA_POLICY", "sometimes")
    with pytest.raises(ValueError, match="DOGGO_DATA_POLICY"):
        Settings()
    monkeypatch.setenv("DOGGO_DATA_POLICY", "ask")
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/telegram")
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings()


def test_model_dir_falls_back_to_the_baseline(tmp_path):
    models = tmp_path / "models"
    write_tiny_model(models / "baseline")
    assert resolve_model_dir(models) == models / "baseline"
    write_tiny_model(models)
    assert resolve_model_dir(models) == models


def test_the_bot_imports_no_torch():
    code = (
        "import sys, bot.__main__, bot.app, bot.handlers, bot.feedback_flow;"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning'));"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_deploy_requirements_cover_the_bot_imports():
    """Every third-party module the bot imports is installed by deploy/requirements-bot.txt."""
    provided = {
        "telegram",
        "aiohttp",
        "onnxruntime",
        "numpy",
        "PIL",
        "pydantic",
        "pydantic_settings",
        "fsspec",
        "gcsfs",
    }
    stdlib = set(sys.stdlib_module_names) | {"bot"}
    imported = set()
    for path in (ROOT / "bot").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - stdlib - {"__future__"} <= provided
    lines = (ROOT / "deploy" / "requirements-bot.txt").read_text().splitlines()
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert not [line for line in requirements if "torch" in line or "lightning" in line]
    assert "python-telegram-bot[rate-limiter]==22.8" in requirements
