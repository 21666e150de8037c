"""Feature Pyramid Network: C2..C5 -> P2..P6, all with TOP_DOWN_PYRAMID_SIZE channels."""

import keras

# Its layer names (fpn_c5p5, fpn_p2, ...), trained with the heads (detection/engine/layer_selection.py).
LAYER_PATTERNS = (r"fpn_.*",)


def build_fpn(c2, c3, c4, c5, size):
    """c2..c5: backbone maps at strides 4..32 -> [P2, P3, P4, P5, P6] at strides 4..64.

    Lateral 1x1 convolutions, nearest-neighbour top-down upsampling, 3x3 output
    convolutions; P6 is P5 subsampled by 2 (for the RPN only), as in matterport and the FPN paper.
    The input side must be a multiple of 64 so that the levels align.
    """
    p5 = keras.layers.Conv2D(size, 1, name="fpn_c5p5")(c5)
    p4 = keras.layers.Add(name="fpn_p4add")([
        keras.layers.UpSampling2D(2, name="fpn_p5upsampled")(p5),
        keras.layers.Conv2D(size, 1, name="fpn_c4p4")(c4)])
    p3 = keras.layers.Add(name="fpn_p3add")([
        keras.layers.UpSampling2D(2, name="fpn_p4upsampled")(p4),
        keras.layers.Conv2D(size, 1, name="fpn_c3p3")(c3)])
    p2 = keras.layers.Add(name="fpn_p2add")([
        keras.layers.UpSampling2D(2, name="fpn_p3upsampled")(p3),
        keras.layers.Conv2D(size, 1, name="fpn_c2p2")(c2)])
    p2 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p2")(p2)
    p3 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p3")(p3)
    p4 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p4")(p4)
    p5 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p5")(p5)
    p6 = keras.layers.MaxPooling2D(1, strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]
