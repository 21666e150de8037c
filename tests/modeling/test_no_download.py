"""Building a model whose weights are about to be loaded never fetches anything: a ResNet-50
config that trained from BACKBONE_WEIGHTS imagenet predicts, exports and evaluates offline."""
import socket

import keras
import pytest

from detection.modeling.detector import Detector
from tests.model_fixtures import tiny_config


@pytest.fixture
def offline(monkeypatch):
    """Every download Keras could make, and every network connection, fails; the attempts
    are recorded."""
    attempts = []

    def refuse_download(fname, origin=None, *args, **kwargs):
        attempts.append(origin or fname)
        raise Exception(f"URL fetch failure on {origin}: offline (test)")

    def refuse_connect(self, address):
        attempts.append(address)
        raise OSError("network is off (test)")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", refuse_download)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


def imagenet_config():
    return tiny_config(BACKBONE="resnet50", BACKBONE_WEIGHTS="imagenet", TRAIN_BN=False, IMAGES_PER_GPU=1,
                       CLASS_NAMES=["a", "b"])


def test_a_run_trained_from_imagenet_predicts_and_exports_offline(offline, tmp_path):
    from detection.engine.predictor import Predictor
    from detection.export import export_from_weights

    config = imagenet_config()
    keras.utils.set_random_seed(0)
    weights = tmp_path / "trained.weights.h5"
    Detector(config, training=False).save_weights(weights)  # as a finished run leaves it
    predictor = Predictor.from_weights(config, weights)
    assert predictor.detect([keras.random.uniform((40, 60, 3), 0, 255).numpy()])[0]["rois"].shape[1] == 4
    export_from_weights(config, weights, tmp_path / "export", ["a", "b"], [1, 2])
    assert offline == []


def test_a_fresh_run_asks_for_imagenet_and_says_why_it_cannot_have_it(offline):
    from detection.modeling.weights import WeightsError

    with pytest.raises(WeightsError, match="BACKBONE_WEIGHTS imagenet: resnet50's ImageNet weights could not be"):
        Detector(imagenet_config(), backbone_weights="imagenet")
    assert len(offline) == 1 and "resnet50" in offline[0]
