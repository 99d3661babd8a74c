"""The ingest report: counts per outcome, and every photo not imported with its reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Outcomes that are not problems; everything else counted is a reason a photo was left out.
GOOD = ("imported", "copied", "reencoded", "unchanged")


@dataclass
class Report:
    """What one ingest run did; `write` saves it as JSON, `summary` is the printed version."""

    source: str
    kind: str
    into: str
    counts: Counter = field(default_factory=Counter)
    problems: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        """One more photo with this outcome."""
        self.counts[outcome] += 1

    def bad(self, name: str, reason: str, detail: str = "") -> None:
        """A file that was not imported, and why."""
        self.count(reason)
        self.problems.append({"file": name, "reason": reason, "detail": detail})

    def duplicate(self, name: str, same_as: str) -> None:
        """Same bytes as a photo already seen under the same breed: imported once."""
        self.count("duplicate")
        self.duplicates.append({"file": name, "same_as": same_as})

    def conflict(self, name: str, breed: str, kept: str, kept_breed: str) -> None:
        """Same bytes under two breeds: the first stays, this one is left out."""
        self.count("conflict")
        self.conflicts.append(
            {"file": name, "breed": breed, "kept": kept, "kept_breed": kept_breed}
        )

    def summary(self) -> str:
        """Counts per outcome, good ones first, as a few lines for the terminal."""
        good = ", ".join(f"{k} {self.counts[k]}" for k in GOOD if self.counts[k])
        bad = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if k not in GOOD)
        return (
            f"ingest {self.source} ({self.kind}) -> {self.into}\n"
            f"  ok: {good or 'nothing'}\n"
            f"  left out: {bad or 'nothing'}"
        )

    def write(self, path: Path) -> None:
        """Save as JSON (made for people and for tests)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "source": self.source,
            "kind": self.kind,
            "into": self.into,
            "counts": dict(sorted(self.counts.items())),
            "problems": self.problems,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
