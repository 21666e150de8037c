"""detection/modeling/keras_saving.py: Keras' skip sets cached, the same weights files."""
import numpy as np

from tests.tools import h5_arrays


def test_cached_skipsets_write_and_read_the_same_weights_files(tmp_path, monkeypatch):
    import keras
    from keras.src.saving import saving_lib

    from detection.modeling.keras_saving import cache_attr_skipsets

    # Keras' own function for the first file (a Detector built earlier may have cached it already).
    uncached = getattr(saving_lib.get_attr_skipset, "__wrapped__", saving_lib.get_attr_skipset)
    monkeypatch.setattr(saving_lib, "get_attr_skipset", uncached)
    inputs = keras.Input((4,))
    hidden = keras.layers.BatchNormalization()(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    model.save_weights(tmp_path / "keras.weights.h5")

    cache_attr_skipsets()
    cache_attr_skipsets()  # a second call keeps the one cache
    assert saving_lib.get_attr_skipset.__wrapped__ is uncached
    assert saving_lib.get_attr_skipset("Layer") is saving_lib.get_attr_skipset("Layer")
    assert saving_lib.get_attr_skipset("Layer") == uncached("Layer")
    model.save_weights(tmp_path / "cached.weights.h5")
    expected, got = h5_arrays(tmp_path / "keras.weights.h5"), h5_arrays(tmp_path / "cached.weights.h5")
    assert got.keys() == expected.keys() and len(got) >= 6  # kernels, biases, the 4 batch-norm arrays
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    saved = [w.numpy() for w in model.weights]
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape))
    model.load_weights(tmp_path / "cached.weights.h5")  # loading with the cache too
    for weight, array in zip(model.weights, saved):
        np.testing.assert_array_equal(weight.numpy(), array)
