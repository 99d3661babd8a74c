"""A small Telegram Bot API stub on 127.0.0.1 (aiohttp): the bot runs unmodified against it.

It serves the methods the bot uses, queues updates for `getUpdates` (long poll), serves file
downloads under `/file/bot<token>/<path>`, records every request, and can inject faults
(429 with retry_after, 5xx, a slow answer, a dropped connection) for the next calls of a method.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Doggo", "username": "doggo_test_bot"}
_JSON_FIELDS = ("reply_markup", "allowed_updates", "reply_parameters", "link_preview_options")


@dataclass
class Call:
    """One request the stub received."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass
class Fault:
    """What to do instead of answering: `kind` in 429 | 500 | 502 | slow | drop."""

    kind: str
    retry_after: int = 1
    delay_s: float = 1.0


@dataclass
class StubState:
    """Everything the stub knows; tests read it."""

    calls: list[Call] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    messages: dict[tuple[int, int], dict] = field(default_factory=dict)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    queued_at: dict[int, float] = field(default_factory=dict)  # update_id -> time it was queued
    webhook: dict[str, Any] = field(default_factory=dict)


def user(chat_id: int) -> dict:
    """A private-chat user whose id equals the chat id."""
    return {"id": chat_id, "is_bot": False, "first_name": f"user{chat_id}"}


class TelegramStub:
    """Run with `await stub.start()`; `stub.api_url` goes into TELEGRAM_API_URL."""

    def __init__(self, token: str = "123456:TEST-token-abcdef") -> None:
        self.token = token
        self.state = StubState()
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Event()
        self._reply_waiters: dict[int, asyncio.Future] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- server ----
    async def start(self) -> TelegramStub:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the server."""
        self._new_update.set()
        if self._runner:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What TELEGRAM_API_URL should be."""
        return f"http://127.0.0.1:{self.port}"

    # ---- feeding the bot ----
    def add_file(self, data: bytes, name: str = "photo.jpg") -> dict:
        """Register downloadable bytes; returns the file fields of a Telegram object."""
        file_id = f"F{next(self._ids)}"
        self.state.files[file_id] = data
        return {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": len(data)}

    def push(self, update: dict) -> dict:
        """Queue an update (given an update_id unless it has one) for getUpdates."""
        update.setdefault("update_id", next(self._ids))
        self.state.updates.append(update)
        self.state.queued_at.setdefault(update["update_id"], time.perf_counter())
        self._new_update.set()
        return update

    def message(self, chat_id: int, **content: Any) -> dict:
        """Queue a new message in a private chat."""
        msg = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"},
            "from": user(chat_id),
            **content,
        }
        return self.push({"message": msg})

    def photo(self, chat_id: int, data: bytes, thumb: bytes = b"thumbnail") -> dict:
        """A photo message: a thumbnail first, the full size (`data`) last, as Telegram sends."""
        sizes = [
            {**self.add_file(thumb), "width": 90, "height": 90},
            {**self.add_file(data), "width": 800, "height": 600},
        ]
        return self.message(chat_id, photo=sizes)

    def document(
        self, chat_id: int, data: bytes, mime: str, name: str, size: int | None = None
    ) -> dict:
        """A file message; `size` overrides the announced file_size (for the 20 MB limit)."""
        doc = {**self.add_file(data), "mime_type": mime, "file_name": name}
        if size is not None:
            doc["file_size"] = size
        return self.message(chat_id, document=doc)

    def text(self, chat_id: int, text: str) -> dict:
        """A text message; a leading /command gets its bot_command entity."""
        entities = []
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.message(chat_id, text=text, entities=entities)

    def press(self, chat_id: int, bot_message: dict, data: str) -> dict:
        """A press on an inline button of a message the bot sent."""
        query = {
            "id": f"Q{next(self._ids)}",
            "from": user(chat_id),
            "chat_instance": f"ci{chat_id}",
            "data": data,
            "message": bot_message,
        }
        return self.push({"callback_query": query})

    def fail(self, method: str, kind: str, times: int = 1, **kw: Any) -> None:
        """Make the next `times` calls of `method` fail with `kind`."""
        for _ in range(times):
            self.state.faults[method].append(Fault(kind, **kw))

    # ---- reading what the bot did ----
    def calls(self, method: str) -> list[Call]:
        """Every call of `method`, in order."""
        return [c for c in self.state.calls if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Messages the bot sent (sendMessage), optionally to one chat."""
        out = [m for m in self.state.messages.values() if m.get("_sent")]
        return [m for m in out if chat_id is None or m["chat"]["id"] == chat_id]

    async def wait_sent(self, chat_id: int, count: int = 1, timeout: float = 20.0) -> list[dict]:
        """Wait until the bot sent `count` messages to `chat_id`; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.sent(chat_id)) < count:
            if time.monotonic() > deadline:
                texts = [m.get("text") for m in self.sent(chat_id)]
                raise TimeoutError(f"chat {chat_id}: {len(texts)} of {count} messages: {texts}")
            await asyncio.sleep(0.01)
        return self.sent(chat_id)

    async def wait_reply(self, message_id: int, timeout: float = 60.0) -> dict:
        """Wait for the bot's reply to message `message_id` (without polling)."""
        for msg in self.sent():
            if msg["_reply_to"] == message_id:
                return msg
        waiter = self._reply_waiters.setdefault(
            message_id, asyncio.get_running_loop().create_future()
        )
        return await asyncio.wait_for(waiter, timeout)

    async def wait_calls(self, method: str, count: int = 1, timeout: float = 20.0) -> list[Call]:
        """Wait until `method` was called `count` times."""
        deadline = time.monotonic() + timeout
        while len(self.calls(method)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method}: {len(self.calls(method))} of {count} calls")
            await asyncio.sleep(0.01)
        return self.calls(method)

    # ---- handlers ----
    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            raw = await request.json()
        else:
            raw = dict(await request.post())
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _JSON_FIELDS and isinstance(value, str):
                value = json.loads(value)
            params[key] = value
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        self.state.calls.append(Call(method, params, time.perf_counter()))
        faults = self.state.faults.get(method)
        if faults:
            fault = faults.popleft()
            return await self._fault(request, fault)
        handler = getattr(self, "_" + re.sub("([A-Z])", r"_\1", method).lower(), None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return web.json_response({"ok": True, "result": await handler(params)})

    async def _fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "429":
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {fault.retry_after}",
                "parameters": {"retry_after": fault.retry_after},
            }
            return web.json_response(body, status=429)
        if fault.kind in ("500", "502", "503"):
            status = int(fault.kind)
            body = {"ok": False, "error_code": status, "description": "Internal Server Error"}
            return web.json_response(body, status=status)
        if fault.kind == "slow":  # longer than the client's timeout: the answer comes too late
            await asyncio.sleep(fault.delay_s)
            return web.json_response({"ok": False, "error_code": 504}, status=504)
        if fault.kind == "drop":
            request.transport.close()
            return web.Response(status=500)
        raise ValueError(f"unknown fault {fault.kind}")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        data = self.state.files.get(file_id)
        self.state.calls.append(Call("download", {"file_id": file_id}, time.perf_counter()))
        faults = self.state.faults.get("download")
        if faults:
            return await self._fault(request, faults.popleft())
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _get_me(self, params: dict) -> dict:
        return BOT_USER

    async def _get_updates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        self.state.updates = [u for u in self.state.updates if u["update_id"] >= offset]
        if not self.state.updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        return self.state.updates[:limit]

    def _new_message(self, chat_id: int, **content: Any) -> dict:
        msg = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"},
            "from": BOT_USER,
            **content,
        }
        self.state.messages[(chat_id, msg["message_id"])] = msg
        return msg

    async def _send_message(self, params: dict) -> dict:
        chat_id = int(params["chat_id"])
        content: dict[str, Any] = {"text": params["text"]}
        if "reply_markup" in params:
            content["reply_markup"] = params["reply_markup"]
        reply_to = (params.get("reply_parameters") or {}).get("message_id")
        reply_to = reply_to or params.get("reply_to_message_id")
        msg = self._new_message(chat_id, **content)
        # Bookkeeping for assertions (the bot ignores unknown fields).
        msg["_sent"], msg["_reply_to"], msg["_at"] = (
            True,
            reply_to and int(reply_to),
            time.perf_counter(),
        )
        if reply_to and int(reply_to) in self._reply_waiters:
            waiter = self._reply_waiters.pop(int(reply_to))
            if not waiter.done():
                waiter.set_result(msg)
        return {k: v for k, v in msg.items() if not k.startswith("_")}

    async def _get_file(self, params: dict) -> dict:
        file_id = params["file_id"]
        if file_id not in self.state.files:
            raise web.HTTPBadRequest(text='{"ok":false,"description":"file not found"}')
        data = self.state.files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(data),
            "file_path": f"photos/{file_id}",
        }

    async def _answer_callback_query(self, params: dict) -> bool:
        return True

    def _edit(self, params: dict, **change: Any) -> dict | bool:
        key = (int(params.get("chat_id") or 0), int(params.get("message_id") or 0))
        msg = self.state.messages.get(key)
        if msg is None:
            return True
        msg.update(change)
        if "reply_markup" in msg and not msg["reply_markup"]:
            del msg["reply_markup"]
        return {k: v for k, v in msg.items() if not k.startswith("_")}

    async def _edit_message_reply_markup(self, params: dict) -> dict | bool:
        return self._edit(params, reply_markup=params.get("reply_markup") or None)

    async def _edit_message_text(self, params: dict) -> dict | bool:
        change = {"text": params["text"]}
        if "reply_markup" in params:
            change["reply_markup"] = params["reply_markup"]
        return self._edit(params, **change)

    async def _set_webhook(self, params: dict) -> bool:
        self.state.webhook = params
        return True

    async def _delete_webhook(self, params: dict) -> bool:
        self.state.webhook = {}
        return True

    async def _get_webhook_info(self, params: dict) -> dict:
        return {
            "url": self.state.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
