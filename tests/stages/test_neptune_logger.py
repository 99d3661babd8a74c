"""Neptune tracking on real neptune runs: offline runs are read back from their on-disk log."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stages.export import data_version
from stages.neptune_eval import log_evaluation, open_evaluation
from stages.neptune_logger import finish_tracking, training_logger
from stages.tracking_settings import NeptuneSettings

PARAMS = {
    "data": {"n_labels": 3, "n_samples": 0},
    "train": {
        "mode": "head",
        "backbone": "efficientnet-lite0",
        "lr": 0.05,
        "batch_size": 16,
        "early_stopping": {"monitor": "val/loss", "patience": 5},
        "trainer": {"devices": 1},
    },
    "export": {"dog_threshold": "auto", "unsure_threshold": 0.4},
}
LOCK_MD5 = "0123456789abcdef0123456789abcdef.dir"


def read_offline_runs(root: Path) -> list[dict]:
    """Replay every offline run's operation log: fields, float series, tags and uploads."""
    runs = []
    for run_dir in sorted((root / ".neptune" / "offline").glob("run__*")):
        run = {
            "id": run_dir.name.split("__")[1],
            "dir": run_dir,
            "fields": {},
            "series": {},
            "tags": set(),
            "files": {},
        }
        for log_file in sorted(run_dir.glob("data-*.log")):
            for line in log_file.read_text().splitlines():
                op = json.loads(line)["obj"]
                path = "/".join(op["path"])
                if op["type"].startswith("Assign"):
                    run["fields"][path] = op["value"]
                elif op["type"] == "LogFloats":
                    run["series"].setdefault(path, []).extend(
                        (v["step"], v["value"]) for v in op["values"]
                    )
                elif op["type"] == "AddStrings" and path == "sys/tags":
                    run["tags"].update(op["values"])
                elif op["type"] == "UploadFile":
                    run["files"][path] = op
        runs.append(run)
    return runs


class TinyClassifier(L.LightningModule):
    """A linear 3-class classifier: the smallest module that logs train and val metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(8, 3)

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.net(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=PARAMS["train"]["lr"])


def tiny_fit(loggers: list) -> None:
    """Two epochs on random data with the given loggers (no checkpoints, no progress bar)."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
    trainer = L.Trainer(
        max_epochs=2,
        logger=loggers,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyClassifier(), DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp cwd: a git repo with a dvc.lock, and no Neptune or DVC experiment variables."""
    for name in (
        "NEPTUNE_MODE",
        "NEPTUNE_API_TOKEN",
        "NEPTUNE_PROJECT",
        "DVC_EXP_NAME",
        "NEPTUNE_EXPERIMENT_PROJECT",
        "NEPTUNE_TRAINING_PROJECT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    lock = {
        "schema": "2.0",
        "stages": {
            "preprocess": {
                "cmd": "python -m stages.preprocess",
                "outs": [{"path": "data/preprocessed", "md5": LOCK_MD5, "nfiles": 3}],
            }
        },
    }
    (tmp_path / "dvc.lock").write_text(json.dumps(lock))  # JSON is YAML
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "dvc.lock"], check=True)
    subprocess.run([*git, "commit", "-qm", "lock"], check=True)
    return tmp_path


def fake_token(address: str) -> str:
    """A token in the client's format (base64 JSON) pointing at `address`."""
    fields = {"api_address": address, "api_url": address, "api_key": "secret-key-0xDEADBEEF"}
    return base64.b64encode(json.dumps(fields).encode()).decode()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers 401 to everything (a revoked token)."""

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"code": 401, "message": "invalid token"}')

        do_POST = do_GET  # noqa: N815 - the name http.server dispatches to

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_offline_run_matches_dvclive(workdir: Path) -> None:
    from dvclive.lightning import DVCLiveLogger

    neptune_logger = training_logger(PARAMS, n_breeds=3)
    assert neptune_logger.run_id.startswith("offline/")
    loggers = [DVCLiveLogger(dir=str(workdir / "dvclive")), neptune_logger]
    tiny_fit(loggers)
    card = {"version": "0123abcd4567", "thresholds": {"dog": 0.5}, "metrics": {"val_top1": 0.5}}
    (workdir / "model.json").write_text(json.dumps(card))
    finish_tracking(loggers, workdir / "model.json")  # what train.py does after the export

    (run,) = read_offline_runs(workdir)
    assert neptune_logger.run_id == f"offline/{run['id']}"
    dvclive = json.loads((workdir / "dvclive" / "metrics.json").read_text())
    checked = 0
    for group, values in dvclive.items():
        for name, value in values.items() if isinstance(values, dict) else []:
            series = run["series"][f"training/{group}/{name}"]
            assert series[-1][1] == pytest.approx(value, rel=1e-6)
            tsv = (workdir / "dvclive" / "plots" / "metrics" / group / f"{name}.tsv").read_text()
            logged = [float(line.split("\t")[-1]) for line in tsv.splitlines()[1:]]
            assert [v for _, v in series] == pytest.approx(logged, rel=1e-6)
            checked += 1
    assert checked >= 3  # train/loss_step, train/loss_epoch, val/loss, val/acc
    steps = [s for s, _ in run["series"]["training/train/loss_step"]]
    assert steps == sorted(steps) and len(steps) == 8  # 2 epochs x 4 batches, one point each

    fields = run["fields"]
    assert fields["params/train/lr"] == 0.05
    assert fields["params/train/early_stopping/monitor"] == "val/loss"
    assert fields["params/export/dog_threshold"] == "auto"
    assert fields["provenance/data_version"] == LOCK_MD5 == data_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert fields["provenance/git_commit"] == head.strip()
    assert fields["training/status"] == "success"
    assert (fields["model/version"], fields["model/metrics/val_top1"]) == ("0123abcd4567", 0.5)
    assert "model/model_json" in run["files"]
    assert {"efficientnet-lite0", "head", "3-breeds", "training"} <= run["tags"]


def test_unreachable_server_warns_once_and_trains_offline(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = fake_token(f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NEPTUNE_API_TOKEN", token)  # a token means async mode by default
    monkeypatch.setenv("NEPTUNE_PROJECT", "doggo/training")
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    logger = training_logger(PARAMS, n_breeds=3)
    tiny_fit([logger])
    logger.close()
    assert time.monotonic() - started < 30  # no 60 s client retry loop

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "cannot reach 127.0.0.1" in warnings[0].getMessage()
    (run,) = read_offline_runs(workdir)  # fell back to offline: nothing lost
    assert len(run["series"]["training/val/loss"]) == 2
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert token not in text and "secret-key-0xDEADBEEF" not in text


@pytest.mark.parametrize("kind", ["refused", "malformed"])
def test_bad_token_warns_once(
    kind: str,
    workdir: Path,
    refusing_server: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = fake_token(refusing_server) if kind == "refused" else "not-base64-json-0xDEADBEEF"
    monkeypatch.setenv("NEPTUNE_API_TOKEN", token)
    monkeypatch.setenv("NEPTUNE_MODE", "sync")
    monkeypatch.setenv("NEPTUNE_PROJECT", "doggo/training")
    logger = training_logger(PARAMS, n_breeds=3)
    tiny_fit([logger])
    logger.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert logger.run_id.startswith("offline/")
    assert len(read_offline_runs(workdir)[0]["series"]["training/val/acc"]) == 2
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert token not in text and "0xDEADBEEF" not in text


def test_invalid_settings_warn_once_and_go_offline(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NEPTUNE_MODE", "ofline")  # a typo must not stop a training
    logger = training_logger(PARAMS, n_breeds=3)
    tiny_fit([logger])
    logger.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["invalid Neptune settings (mode); logging offline to .neptune/"]
    assert len(read_offline_runs(workdir)[0]["series"]["training/val/loss"]) == 2


def test_debug_mode_writes_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEPTUNE_MODE", "debug")
    logger = training_logger(PARAMS, n_breeds=3)
    tiny_fit([logger])
    logger.close()
    assert logger.run_id.startswith("debug/")
    # the client may leave an empty .neptune/sync folder, but no run data
    assert not [p for p in workdir.glob(".neptune/**/*") if p.is_file()]


def test_settings_mode_and_project_split(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEPTUNE_MODE", "NEPTUNE_API_TOKEN", "DVC_EXP_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEPTUNE_PROJECT", "ws/fallback")
    monkeypatch.setenv("NEPTUNE_EXPERIMENT_PROJECT", "ws/experiments")
    monkeypatch.setenv("NEPTUNE_TRAINING_PROJECT", "ws/trainings")
    plain = NeptuneSettings()
    assert (plain.resolved_mode(), plain.resolved_project()) == ("offline", "ws/trainings")
    monkeypatch.setenv("NEPTUNE_API_TOKEN", "s3cr3t")
    monkeypatch.setenv("DVC_EXP_NAME", "glued-taro")
    exp = NeptuneSettings()
    assert (exp.resolved_mode(), exp.resolved_project()) == ("async", "ws/experiments")
    assert exp.run_kind() == "experiment" and "s3cr3t" not in repr(exp)
    monkeypatch.delenv("NEPTUNE_EXPERIMENT_PROJECT")
    assert NeptuneSettings().resolved_project() == "ws/fallback"


def test_evaluation_logs_into_a_linked_run(workdir: Path) -> None:
    models, plots = workdir / "models", workdir / "eval" / "plots"
    models.mkdir()
    plots.mkdir(parents=True)
    labels = [{"name": n, "display": n, "wnid": None} for n in ("beagle", "pug", "samoyed")]
    card = {
        "format": 1,
        "version": "abc123abc123",
        "backbone": "efficientnet-lite0",
        "labels": labels,
        "thresholds": {"dog": 0.3, "unsure": 0.4},
        "provenance": {"neptune_run_id": "offline/1234-training", "data_version": "d1"},
    }
    (models / "model.json").write_text(json.dumps(card))
    records = [
        {"actual": a, "predicted": p}
        for a, p in [
            ("beagle", "beagle"),
            ("pug", "beagle"),
            ("samoyed", "samoyed"),
            ("pug", "pug"),
        ]
    ]
    (plots / "confusion.json").write_text(json.dumps(records))
    (plots / "per_breed.csv").write_text("breed,accuracy\nbeagle,1.0\npug,0.5\nsamoyed,1.0\n")
    metrics = {"test": {"top1": 0.75, "top3": 1.0}, "n": 4, "note": "text is skipped"}

    run, run_id = open_evaluation(models)
    assert run_id == "offline/1234-training"
    log_evaluation(run, models, metrics, plots)
    (run,) = read_offline_runs(workdir)  # offline runs cannot be resumed: a linked run
    fields = run["fields"]
    assert fields["provenance/training_run_id"] == "offline/1234-training"
    assert fields["provenance/data_version"] == "d1"
    assert (fields["eval/test/top1"], fields["eval/test/top3"], fields["eval/n"]) == (0.75, 1.0, 4)
    assert "eval/note" not in fields and fields["model/version"] == "abc123abc123"
    assert {"evaluate", "efficientnet-lite0"} <= run["tags"]
    uploads = run["files"]
    assert {"eval/plots/confusion", "eval/plots/per_breed", "model/model_json"} <= set(uploads)
    stored = {k: run["dir"] / "upload_path" / op["tmp_file_name"] for k, op in uploads.items()}
    assert stored["eval/plots/confusion"].read_bytes().startswith(b"\x89PNG")
    # copied at logging time: later changes to the files do not leak into the run
    (models / "model.json").write_text("{}")
    assert json.loads(stored["model/model_json"].read_text())["version"] == "abc123abc123"


def test_dvc_exp_run_tags_the_experiment_name(workdir: Path) -> None:
    """Under a real `dvc exp run`, the run is tagged with the experiment and uses its project."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "from stages.neptune_logger import training_logger;"
        "import yaml; lg = training_logger(yaml.safe_load(open('params.yaml')), 3); lg.close()"
    )
    stage = {"cmd": f'python -c "{code}"', "params": ["train.lr"]}
    (workdir / "dvc.yaml").write_text(json.dumps({"stages": {"track": stage}}))
    (workdir / "params.yaml").write_text(json.dumps(PARAMS))
    env = {**os.environ, "PYTHONPATH": str(root), "NEPTUNE_EXPERIMENT_PROJECT": "ws/exps"}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (
        ["dvc", "init", "-q"],
        [*git, "add", "-A"],
        [*git, "commit", "-qm", "pipeline"],
        ["dvc", "exp", "run", "-q", "-n", "lr-sweep-1", "-S", "train.lr=0.1"],
    ):
        subprocess.run(cmd, check=True, env=env, capture_output=True)

    (run,) = read_offline_runs(workdir)
    assert {"lr-sweep-1", "experiment", "efficientnet-lite0"} <= run["tags"]
    assert run["fields"]["provenance/dvc_exp_name"] == "lr-sweep-1"
    assert run["fields"]["provenance/project"] == "ws/exps"
    assert run["fields"]["params/train/lr"] == 0.1


@pytest.mark.slow
def test_real_tiny_train_and_evaluate_leave_one_trail(workdir: Path) -> None:
    """The real train and evaluate stages: Neptune holds what DVCLive and eval/ hold, linked."""
    from stages.evaluate import main as evaluate_main
    from stages.features import FeatureSpec, negative_photos, update
    from stages.manifest import read_manifest
    from stages.train import run as train_run
    from tests.stages.test_train import shrunk_params
    from tests.stages.tiny_dataset import make_preprocessed, photo_bytes

    pre = make_preprocessed(workdir / "data/preprocessed")
    (workdir / "not-dogs").mkdir()
    for i in range(3):
        (workdir / "not-dogs" / f"n{i}.jpg").write_bytes(photo_bytes((20 * i, 200, 20), 50 + i))
    spec = FeatureSpec("efficientnet-lite0", 256, 224)
    update(
        spec.path(workdir / "data/features"),
        [(r.hash, pre / r.path) for r in read_manifest(pre)],
        spec,
        threads=1,
        batch_size=16,
    )
    negatives = negative_photos(workdir / "not-dogs")
    update(spec.path(workdir / "data/features", negatives=True), negatives, spec, 1, 16)
    params = shrunk_params("head", workdir / "not-dogs")
    (workdir / "params.yaml").write_text(json.dumps(params))

    card = train_run(params, workdir / "models")
    evaluate_main([])

    runs = {r["fields"].get("sys/name"): r for r in read_offline_runs(workdir)}
    train, evaluation = runs["training"], runs["evaluate"]
    assert card["provenance"]["neptune_run_id"] == f"offline/{train['id']}"
    eval_metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    assert eval_metrics["neptune_run_id"] == card["provenance"]["neptune_run_id"]
    dvclive = json.loads((workdir / "dvclive" / "metrics.json").read_text())
    for group in ("train", "val"):
        for name, value in dvclive[group].items():
            assert train["series"][f"training/{group}/{name}"][-1][1] == pytest.approx(value)
    fields = train["fields"]
    assert fields["params/train/lr"] == params["train"]["lr"]
    assert fields["provenance/data_version"] == card["provenance"]["data_version"] == LOCK_MD5
    assert fields["provenance/git_commit"] == card["provenance"]["git_commit"]
    assert fields["model/version"] == card["version"]
    assert {"efficientnet-lite0", "head", "3-breeds"} <= train["tags"]
    linked = evaluation["fields"]
    assert linked["provenance/training_run_id"] == card["provenance"]["neptune_run_id"]
    assert linked["eval/top1"] == pytest.approx(eval_metrics["top1"])
    assert "eval/plots/confusion" in evaluation["files"]
