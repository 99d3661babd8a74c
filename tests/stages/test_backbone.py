"""The plain network modules: normaliser, backbone features, warm-started head."""

from __future__ import annotations

import pytest
import torch

from stages.backbone import BreedNet, Normalize, load_backbone, make_head, weights_path


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet-lite0", 224)


def test_normalize_is_tf_style_and_nchw() -> None:
    pixels = torch.tensor([0, 127, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 4, 5, 3)
    x = Normalize()(pixels)
    assert x.shape == (2, 3, 4, 5)
    assert x[0, :, 0, 0].tolist() == pytest.approx([-127 / 128, 0.0, 1.0])


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        weights_path("resnet-50")


def test_pooled_features_feed_the_imagenet_classifier(lite0) -> None:
    pixels = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.no_grad():
        features = lite0(Normalize()(pixels))
        expected = lite0.net(Normalize()(pixels))  # the library's own forward (pool + fc)
    assert features.shape == (2, lite0.feature_dim) == (2, 1280)
    torch.testing.assert_close(lite0.classifier(features), expected, atol=1e-4, rtol=1e-4)


def test_warm_start_copies_imagenet_rows_for_known_wnids(lite0) -> None:
    head = make_head(lite0, ["n02099601", None], {"n02099601": 207}, warm_start=True)
    assert torch.equal(head.weight[0], lite0.classifier.weight[207])
    assert head.bias[0] == lite0.classifier.bias[207]
    assert not torch.equal(head.weight[1], lite0.classifier.weight[207])
    cold = make_head(lite0, ["n02099601"], {"n02099601": 207}, warm_start=False)
    assert not torch.equal(cold.weight[0], lite0.classifier.weight[207])


def test_breednet_outputs_breed_and_imagenet_logits(lite0) -> None:
    net = BreedNet(lite0, torch.nn.Linear(lite0.feature_dim, 7)).eval()
    with torch.no_grad():
        breeds, imagenet = net(torch.zeros(3, 224, 224, 3, dtype=torch.uint8))
    assert breeds.shape == (3, 7) and imagenet.shape == (3, 1000)
