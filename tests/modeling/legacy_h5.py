"""Writes Keras 2 style HDF5 weights files, the layout matterport's save_weights produces
(../shared/matterport/README.md): root attribute layer_names, one group per layer with a
weight_names attribute, each array a dataset of the group under its weight name."""
import h5py


def write_legacy_h5(path, groups, extra_layer_names=()):
    """groups: {group name: [(weight name, array), ...]} in model order (a nested model's
    group holds its inner layers' arrays, e.g. rpn_model: rpn_conv_shared/kernel:0, ...).
    extra_layer_names: layers without weights also listed in layer_names (losses, inputs)."""
    with h5py.File(path, "w") as f:
        names = list(groups) + list(extra_layer_names)
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in names:
            group = f.create_group(name)
            weights = groups.get(name, [])
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for weight_name, array in weights:
                group.create_dataset(weight_name, data=array)


def conv(name, kernel, bias):
    """The two entries of a Conv2D or Dense layer."""
    return [(f"{name}/kernel:0", kernel), (f"{name}/bias:0", bias)]
