"""`python -m bot.predict IMAGE_OR_DIR... [--model DIR] [--top-k 3] [--json]` (torch-free).

Directories are walked recursively in sorted order (files with an image extension; files named
on the command line are always tried). Every photo gets one output line, in input order: its
prediction, or an error line (`{"path", "error", "detail"}` with `--json`); a bad file never stops
the rest. Exit status: 0 when at least one photo was predicted, 1 when none could be (no photos,
or all bad), 2 for usage errors and a model that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bot.imaging import IMAGE_SUFFIXES, BadImage
from bot.predictor import ModelError, Prediction, Predictor

log = logging.getLogger(__name__)


def default_model_dir(root: Path = Path(".")) -> Path:
    """`models` once a trained model exists there, else the no-training `models/baseline`."""
    return (
        root / "models" if (root / "models" / "model.onnx").is_file() else root / "models/baseline"
    )


def expand(paths: Sequence[str]) -> Iterator[Path]:
    """Files as given; directories walked recursively (sorted, image extensions, no dot-files)."""
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    yield Path(root) / name


def as_json(path: Path, result: Prediction | BadImage) -> str:
    """One JSON line: the prediction, or `{"path", "error", "detail"}`."""
    if isinstance(result, BadImage):
        record = {"path": str(path), "error": result.reason, "detail": result.detail}
    else:
        record = {"path": str(path), **result.to_dict()}
    return json.dumps(record, ensure_ascii=False)


def as_row(path: Path, result: Prediction | BadImage) -> str:
    """One readable line: path, verdict, dog probability and the top breeds."""
    if isinstance(result, BadImage):
        return f"{path}  ERROR {result.reason}: {result.detail}"
    breeds = ", ".join(f"{b.display} {b.probability:.1%}" for b in result.breeds)
    return f"{path}  {result.verdict:<9}  dog {result.dog_probability:6.1%}  {breeds}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.predict", description=__doc__.split("\n")[0]
    )
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--model", type=Path, default=None,
                        help="model dir (default: models if models/model.onnx exists, else "
                             "models/baseline)")  # fmt: skip
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per photo per line")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Predict every photo; print one line per photo; return the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.top_k < 1:
        log.error("--top-k must be at least 1")
        return 2
    model_dir = args.model or default_model_dir()
    try:
        predictor = Predictor.load(model_dir, threads=args.threads)
    except ModelError as exc:
        log.error("cannot load the model: %s", exc)
        return 2
    paths = list(expand(args.paths))
    show = as_json if args.json else as_row
    predicted = 0
    results = predictor.predict_many(paths, top_k=args.top_k, batch_size=args.batch_size)
    for path, result in zip(paths, results, strict=True):
        predicted += isinstance(result, Prediction)
        print(show(path, result), flush=True)  # noqa: T201 (the CLI's output)
    if not paths:
        log.error("no photos found in %s", " ".join(args.paths))
    return 0 if predicted else 1


if __name__ == "__main__":
    sys.exit(main())
