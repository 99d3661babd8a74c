"""Optional int8 export (`export.quantize: int8`): static quantisation with ONNX Runtime.

The float model is what the checkpoint parity test pins down; int8 trades a little accuracy
(about 98% top-1 agreement with the float model on ImageWoof) for a network about twice as fast
on 2 cores. `evaluate` measures whichever model is exported, so `dvc exp run -S
export.quantize=int8` shows the trade in `dvc exp show`. Settings that were measured here:
operator-oriented format (QLinearConv), per-channel int8 weights, uint8 activations, MinMax
calibration; the QDQ format and uint8 weights were slower or less accurate.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODES = ("none", "int8")


def quantize_int8(model: Path, calibration: np.ndarray) -> Path:
    """Replace the float ONNX `model` by its int8 version, calibrated on uint8 NHWC pixels."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ValueError("int8 quantisation needs calibration photos (the train split is empty)")

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixels": pixels[None]} for pixels in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "int8.onnx"
        quant_pre_process(str(model), str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            Photos(),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        os.replace(quantized, model)
    log.info("int8 model: %s (%d calibration photos)", model, len(calibration))
    return model


def check_mode(mode: str) -> str:
    """`export.quantize` validated: none | int8."""
    if mode not in MODES:
        raise ValueError(f"export.quantize must be one of {MODES}, not {mode!r}")
    return mode
