"""Neptune tracking for the train and evaluate stages: a Lightning logger on the neptune client.

Lightning 2.6.4+ dropped its NeptuneLogger; this one needs only the `neptune` 1.x client. It
never breaks a stage: see stages/neptune_run.py for the one-warning fallback to offline mode.
"""

from __future__ import annotations

import io
import json
import logging
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from stages.neptune_run import SafeRun, flatten, open_run
from stages.tracking_settings import NeptuneSettings, data_version, git_commit

log = logging.getLogger(__name__)


class NeptuneLogger(Logger):
    """Lightning logger writing hyperparameters under params/ and metrics under `prefix`/."""

    def __init__(self, run: SafeRun, prefix: str = "training") -> None:
        super().__init__()
        self._run = run
        self._prefix = prefix
        self._last_step: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "neptune"

    @property
    def version(self) -> str:
        return self._run.id or ""

    @property
    def run_id(self) -> str | None:
        """The run's id ('DOG-12' online, 'offline/<uuid>' offline): goes into model.json."""
        return self._run.id

    @property
    @rank_zero_experiment
    def experiment(self) -> SafeRun:
        """The guarded run (`.raw` is the neptune Run, None when tracking is off)."""
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Every leaf under params/; values neptune cannot store are stringified."""
        params = vars(params) if isinstance(params, Namespace) else dict(params or {})
        self._run.assign_all("params", params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Append each metric at `step`; a repeat at one step (Lightning's `epoch`) is skipped."""
        for key, value in metrics.items():
            if step is not None and self._last_step.get(key, -1) >= step:
                continue
            if step is not None:
                self._last_step[key] = step
            self._run.append(f"{self._prefix}/{key}", value, step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Checkpoints are DVC outputs, not uploaded; record where the best one is."""
        best = getattr(checkpoint_callback, "best_model_path", "")
        if best:
            self._run.assign(f"{self._prefix}/best_checkpoint", best)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Record the outcome; the run stays open for the model card (see `close`)."""
        self._run.assign(f"{self._prefix}/status", status)

    def close(self) -> None:
        """Flush and stop the run (after the export has logged the model card)."""
        self._run.stop()


def training_logger(params: Mapping[str, Any], n_breeds: int, root: Path = Path()) -> NeptuneLogger:
    """Open the run of one training: tags, the params.yaml sections, data version, git commit."""
    settings = NeptuneSettings()
    train = params.get("train", {})
    tags = [
        train.get("backbone", ""),
        train.get("mode", ""),
        f"{n_breeds}-breeds",
        settings.run_kind(),
        settings.dvc_exp_name or "",
    ]
    run = open_run(settings, name=settings.dvc_exp_name or "training", tags=tags)
    logger = NeptuneLogger(run)
    logger.log_hyperparams({k: params[k] for k in ("data", "train", "export") if k in params})
    log_provenance(run, settings, root)
    run.assign("data/n_breeds", n_breeds)
    return logger


def log_provenance(run: SafeRun, settings: NeptuneSettings, root: Path = Path()) -> None:
    """Data version, git commit, DVC experiment name and the intended project of a run."""
    run.assign_all(
        "provenance",
        {
            "data_version": data_version(root) or "unknown",
            "git_commit": git_commit(root) or "unknown",
            "kind": settings.run_kind(),
            "dvc_exp_name": settings.dvc_exp_name or "",
            "project": settings.resolved_project() or "",
            "neptune_run_id": run.id or "",  # offline ids survive `neptune sync` only here
        },
    )


def log_model_card(run: SafeRun, model_json: Path) -> None:
    """Upload models/model.json and copy its version, thresholds and metrics into fields."""
    card = json.loads(model_json.read_text())
    run.upload("model/model_json", model_json)
    run.assign_all(
        "model", {k: card[k] for k in ("version", "backbone", "thresholds", "metrics") if k in card}
    )


def log_evaluation(
    model_dir: Path, metrics: Mapping[str, Any], plots_dir: Path, root: Path = Path()
) -> str | None:
    """Log the evaluate stage into the training run (or one linked to it); return the run id.

    Online, the run named in model.json is resumed. Offline runs cannot be resumed (the client
    has no local index of them), so the evaluation gets its own run whose
    provenance/training_run_id names the training run.
    """
    card = json.loads((model_dir / "model.json").read_text())
    training_id = (card.get("provenance") or {}).get("neptune_run_id") or None
    settings = NeptuneSettings()
    tags = [card.get("backbone", ""), "evaluate", settings.run_kind(), settings.dvc_exp_name or ""]
    run = open_run(settings, name="evaluate", tags=tags, with_id=training_id)
    if run.id != training_id:
        log_provenance(run, settings, root)
        run.assign("provenance/training_run_id", training_id or "")
    numbers = {k: v for k, v in flatten(metrics).items() if isinstance(v, int | float)}
    run.assign_all("eval", numbers)
    log_model_card(run, model_dir / "model.json")
    confusion = plots_dir / "confusion.json"
    if confusion.is_file():
        labels = [label["name"] for label in card.get("labels", [])]
        png = confusion_png(json.loads(confusion.read_text()), labels)
        run.upload("eval/plots/confusion", png, extension="png")
        run.upload("eval/plots/confusion_json", confusion)
    for extra in sorted(plots_dir.glob("*.csv")):
        run.upload(f"eval/plots/{extra.stem}", extra)
    run.stop()
    return training_id or run.id


def confusion_png(records: Any, labels: list[str]) -> bytes:
    """Render DVC confusion records ([{'actual', 'predicted'}...]) as a PNG heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if isinstance(records, Mapping):  # {"<name>": [records]} as some writers nest it
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
