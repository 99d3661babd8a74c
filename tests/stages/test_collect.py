"""`stages.collect` with a local store: /forget reaches photos already collected into data/new."""

from __future__ import annotations

from pathlib import Path

from bot.feedback import FeedbackStore
from stages.collect import LEDGER, collect, read_ledger
from stages.ingest import Settings
from tests.stages.tiny_dataset import photo_bytes


def test_forget_removes_collected_photos_of_that_user_only(tmp_path: Path) -> None:
    store_dir, data_new = tmp_path / "store", tmp_path / "data/new"
    store_dir.mkdir()
    data_new.mkdir(parents=True)
    store = FeedbackStore(f"file://{store_dir}", salt="test-salt")
    alice = [
        store.keep(photo_bytes((200, 10, 10), seed=i), "beagle", 1, "v1", "beagle", 0.9)
        for i in range(2)
    ]
    bob = store.keep(photo_bytes((10, 10, 200), seed=7), "Samoyed", 2, "v1", "samoyed", 0.8)
    assert len(alice) == 2 and bob

    assert collect(f"file://{store_dir}", data_new, Settings()) == {"imported": 3}
    assert len(list(data_new.glob("*/*.jpg"))) == 3

    assert store.forget(1) == 2  # alice's photos leave the store, a tombstone stays
    assert collect(f"file://{store_dir}", data_new, Settings()) == {"forgotten": 2}
    left = sorted(p.relative_to(data_new).as_posix() for p in data_new.glob("*/*.jpg"))
    assert left == [Path(bob).relative_to(store_dir).as_posix()]
    outcomes = sorted(e["outcome"] for e in read_ledger(data_new).values())
    assert outcomes == ["forgotten", "forgotten", "imported"]
    assert (data_new / LEDGER).exists()

    assert collect(f"file://{store_dir}", data_new, Settings()) == {}  # nothing more to do
