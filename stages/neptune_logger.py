"""Neptune tracking for the train stage: a Lightning logger on the neptune client.

Lightning 2.6.4+ dropped its NeptuneLogger; this one needs only the `neptune` 1.x client. It
never breaks a stage: stages/neptune_run.py has the one-warning fallback to offline mode, and
stages/neptune_eval.py logs the evaluate stage. The train stage adds `training_logger(...)` to
its loggers and calls `finish_tracking(loggers, model_json)` after the export.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from stages.export import data_version, git_commit
from stages.neptune_eval import log_model_card, log_provenance
from stages.neptune_run import SafeRun, open_run
from stages.tracking_settings import load_settings

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
    def neptune_run_id(self) -> str | None:
        """Alias of `run_id`: what stages/train.py looks for on its loggers."""
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


def training_logger(params: Mapping[str, Any], n_breeds: int = 0) -> NeptuneLogger:
    """Open the run of one training: tags, the params.yaml sections, data version, git commit."""
    settings = load_settings()
    train = params.get("train", {})
    tags = [
        train.get("backbone", ""),
        train.get("mode", ""),
        f"{n_breeds}-breeds" if n_breeds else "",
        settings.run_kind(),
        settings.dvc_exp_name or "",
    ]
    run = open_run(settings, name=settings.dvc_exp_name or "training", tags=tags)
    logger = NeptuneLogger(run)
    logger.log_hyperparams({k: params[k] for k in ("data", "train", "export") if k in params})
    log_provenance(run, settings, data_version(), git_commit())
    run.assign("data/n_breeds", n_breeds)
    return logger


def finish_tracking(loggers: list, model_json: Path) -> None:
    """After the export: log the model card into each Neptune run and close it."""
    for logger in loggers:
        if isinstance(logger, NeptuneLogger):
            log_model_card(logger.experiment, model_json)
            logger.close()
