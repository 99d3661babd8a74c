"""Neptune tracking for the evaluate stage (torch-free): metrics, plots and the model card."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stages.neptune_run import SafeRun, flatten, open_run
from stages.tracking_settings import NeptuneSettings, load_settings

log = logging.getLogger(__name__)


def log_provenance(run: SafeRun, settings: NeptuneSettings, data_version: Any, commit: Any) -> None:
    """Data version, git commit, DVC experiment name and the intended project of a run."""
    run.assign_all(
        "provenance",
        {
            "data_version": data_version or "unknown",
            "git_commit": commit or "unknown",
            "kind": settings.run_kind(),
            "dvc_exp_name": settings.dvc_exp_name or "",
            "project": settings.resolved_project() or "",
            "neptune_run_id": run.id or "",  # offline ids change at `neptune sync`: kept here
        },
    )


def log_model_card(run: SafeRun, model_json: Path) -> None:
    """Upload models/model.json and copy its version, thresholds and metrics into fields."""
    card = json.loads(model_json.read_text())
    run.upload("model/model_json", model_json)
    run.assign_all(
        "model", {k: card[k] for k in ("version", "backbone", "thresholds", "metrics") if k in card}
    )


def open_evaluation(model_dir: Path) -> tuple[SafeRun, str | None]:
    """The run for the evaluate stage and the id for eval/metrics.json.

    Online, the training run named in model.json's provenance is resumed. Offline runs cannot
    be resumed (the client keeps no local index of them), so the evaluation gets its own run
    whose provenance/training_run_id names the training run. The id returned is the training
    run's, or the evaluation run's when the model names none.
    """
    card = json.loads((model_dir / "model.json").read_text())
    provenance = card.get("provenance") or {}
    training_id = provenance.get("neptune_run_id") or None
    settings = load_settings()
    tags = [card.get("backbone", ""), "evaluate", settings.run_kind(), settings.dvc_exp_name or ""]
    run = open_run(settings, name="evaluate", tags=tags, with_id=training_id)
    if run.id != training_id:
        log_provenance(run, settings, provenance.get("data_version"), provenance.get("git_commit"))
        run.assign("provenance/training_run_id", training_id or "")
    return run, training_id or run.id


def log_evaluation(
    run: SafeRun, model_dir: Path, metrics: Mapping[str, Any], plots_dir: Path
) -> None:
    """Log the numeric metrics, the plots (confusion matrix as an image) and model.json; stop."""
    numbers = {k: v for k, v in flatten(metrics).items() if isinstance(v, int | float)}
    run.assign_all("eval", numbers)
    model_json = model_dir / "model.json"
    log_model_card(run, model_json)
    confusion = plots_dir / "confusion.json"
    if confusion.is_file():
        labels = [label["name"] for label in json.loads(model_json.read_text()).get("labels", [])]
        png = confusion_png(json.loads(confusion.read_text()), labels)
        run.upload("eval/plots/confusion", png, extension="png")
        run.upload("eval/plots/confusion_json", confusion)
    for extra in sorted(plots_dir.glob("*.csv")):
        run.upload(f"eval/plots/{extra.stem}", extra)
    run.stop()


def confusion_png(records: Any, labels: list[str]) -> bytes:
    """Render DVC confusion records ([{'actual', 'predicted'}...]) as a PNG heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if isinstance(records, Mapping):  # {"<name>": [records]}, as some writers nest it
        records = next(iter(records.values()), [])
    pairs = [(str(r["actual"]), str(r["predicted"])) for r in records]
    names = labels + sorted({n for pair in pairs for n in pair} - set(labels))
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=int)
    for actual, predicted in pairs:
        counts[index[actual], index[predicted]] += 1
    size = 2 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(counts, cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="actual")
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    if len(names) <= 25:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
