"""A tiny ONNX model that follows the model contract, with outputs a test can predict by hand.

uint8 NHWC `pixels` -> x = (p - 127) / 128 -> m = per-channel mean [N, 3].
`breeds` = softmax(10 * m @ W) with W = identity on the first three labels (red photo -> label 0,
green -> label 1, blue -> label 2; grey -> uniform). `dog` = sigmoid(10 * max(m) + 3): a bright
photo is a dog, a black one is not, a grey one is a dog with a uniform (unsure) breed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LABELS = [
    {"name": "red_setter", "display": "Red setter", "wnid": "n02100877"},
    {"name": "green_terrier", "display": "Green terrier", "wnid": None},
    {"name": "blue_heeler", "display": "Blue heeler", "wnid": None},
]


def tiny_onnx(n_labels: int = 3, size: int = 32) -> bytes:
    """The serialized tiny model for `n_labels` breeds and `size`x`size` input."""
    weights = np.zeros((3, n_labels), dtype=np.float32)
    for i in range(min(3, n_labels)):
        weights[i, i] = 10.0
    inits = [
        numpy_helper.from_array(np.array(127, np.float32), "c127"),
        numpy_helper.from_array(np.array(128, np.float32), "c128"),
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(np.array(10, np.float32), "c10"),
        numpy_helper.from_array(np.array(3, np.float32), "c3"),
    ]
    nodes = [
        helper.make_node("Cast", ["pixels"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["xf", "c127"], ["xs"]),
        helper.make_node("Div", ["xs", "c128"], ["x"]),
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["breeds"], axis=-1),
        helper.make_node("ReduceMax", ["m"], ["mx"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["mx", "c10"], ["d1"]),
        helper.make_node("Add", ["d1", "c3"], ["d2"]),
        helper.make_node("Sigmoid", ["d2"], ["dog"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", size, size, 3])],
        [
            helper.make_tensor_value_info("breeds", TensorProto.FLOAT, ["N", n_labels]),
            helper.make_tensor_value_info("dog", TensorProto.FLOAT, ["N"]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_tiny_model(
    model_dir: Path,
    labels: list[dict] | None = None,
    size: int = 32,
    resize: int = 36,
    thresholds: dict | None = None,
) -> Path:
    """Write model.onnx + model.json (the real contract) into `model_dir`; return it."""
    labels = LABELS if labels is None else labels
    model_dir.mkdir(parents=True, exist_ok=True)
    data = tiny_onnx(len(labels), size)
    (model_dir / "model.onnx").write_bytes(data)
    meta = {
        "format": 1,
        "name": "baseline",
        "version": hashlib.sha256(data).hexdigest()[:12],
        "backbone": "tiny",
        "input": {
            "name": "pixels",
            "size": size,
            "resize": resize,
            "dtype": "uint8",
            "layout": "NHWC",
        },
        "outputs": {"breeds": "breeds", "dog": "dog"},
        "labels": labels,
        "thresholds": thresholds or {"dog": 0.5, "unsure": 0.6},
        "metrics": {},
        "provenance": {
            "data_version": None,
            "params": {},
            "git_commit": None,
            "created": "2026-01-01T00:00:00Z",
            "neptune_run_id": None,
        },
    }
    (model_dir / "model.json").write_text(json.dumps(meta, indent=2))
    return model_dir
