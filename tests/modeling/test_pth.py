"""The .pth reader against files written by real torch (tests/fixtures/pth/README.md)."""

import os
import pickle
import zipfile

import numpy as np
import pytest

from detection.modeling.pth import PthError, read_pth, read_state_dict

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pth")


def fixture(name):
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="module")
def expected():
    with np.load(fixture("expected.npz")) as arrays:
        return dict(arrays)


@pytest.mark.parametrize("name", ["state_dict.pth", "state_dict_legacy.pth"])
def test_state_dict_matches_torch_arrays(name, expected):
    arrays = read_state_dict(fixture(name))
    assert list(arrays) == list(expected)  # torch's order kept
    for key, want in expected.items():
        assert arrays[key].dtype == want.dtype, key
        assert arrays[key].shape == want.shape, key
        np.testing.assert_array_equal(arrays[key], want, err_msg=key)
    # views: a transposed tensor and one at a storage offset read their own elements
    assert arrays["extra.transposed"][0].tolist() == [0.0, 6.0, 12.0, 18.0]
    assert arrays["extra.offset_view"][0, 0] == 8.0
    assert arrays["bn.num_batches_tracked"].dtype == np.int64
    assert arrays["extra.half"].dtype == np.float16 and arrays["extra.bf16"].dtype == np.float32
    assert arrays["extra.scalar"].shape == () and float(arrays["extra.scalar"]) == 3.5
    arrays["conv.weight"][...] = 0  # writeable copies, not views into the file
    assert arrays["extra.transposed"].flags.writeable


def test_checkpoint_state_dict_under_model(expected):
    checkpoint = read_pth(fixture("checkpoint.pth"))
    assert checkpoint["epoch"] == 3 and "optimizer" in checkpoint
    arrays = read_state_dict(fixture("checkpoint.pth"))
    assert sorted(arrays) == sorted(k for k in expected if not k.startswith("extra."))
    np.testing.assert_array_equal(arrays["fc.weight"], expected["fc.weight"])


def test_pickle_holding_code_is_refused_without_running_it():
    marker = "/tmp/detection_pth_fixture_ran_code"  # what the fixture's os.system would create
    if os.path.exists(marker):
        os.remove(marker)
    with pytest.raises(PthError) as error:
        read_pth(fixture("runs_code.pth"))
    message = str(error.value)
    assert "\n" not in message
    assert "runs_code.pth" in message and "system" in message
    assert not os.path.exists(marker)


def test_crafted_pickle_in_a_zip_is_refused(tmp_path):
    path = tmp_path / "crafted.pth"

    class Evil:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("crafted/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(PthError, match=r"crafted\.pth: refused to unpickle global (__builtin__|builtins)\.eval "):
        read_pth(path)


def test_truncated_file(tmp_path):
    data = open(fixture("state_dict.pth"), "rb").read()
    for name, cut in (("zip", len(data) // 2), ("legacy", 1500)):
        source = fixture("state_dict.pth" if name == "zip" else "state_dict_legacy.pth")
        path = tmp_path / f"truncated_{name}.pth"
        path.write_bytes(open(source, "rb").read()[:cut])
        with pytest.raises(PthError) as error:
            read_pth(path)
        assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_not_a_torch_file(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(PthError, match="notes.pth: neither a zip archive nor a legacy torch.save file"):
        read_pth(text)
    with pytest.raises(PthError, match="missing.pth: cannot read"):
        read_pth(tmp_path / "missing.pth")
    archive = tmp_path / "other.pth"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(PthError, match="other.pth: .*data.pkl"):
        read_pth(archive)


def test_no_state_dict_in_the_file(tmp_path):
    path = tmp_path / "numbers.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("numbers/data.pkl", pickle.dumps({"epoch": 3, "lr": 0.1}, protocol=2))
    assert read_pth(path) == {"epoch": 3, "lr": 0.1}
    with pytest.raises(PthError, match="numbers.pth: no state_dict"):
        read_state_dict(path)


def test_test_writer_reads_back_like_torch(tmp_path, expected):
    """tests/modeling/pth_writer.py (used for whole-detector .pth files) writes what torch does."""
    from tests.modeling.pth_writer import write_pth

    state = {k: v for k, v in expected.items() if v.dtype in (np.float32, np.int64) and v.ndim}
    write_pth(tmp_path / "written.pth", state)
    arrays = read_state_dict(tmp_path / "written.pth")
    assert list(arrays) == list(state)
    for key, want in state.items():
        np.testing.assert_array_equal(arrays[key], np.ascontiguousarray(want), err_msg=key)
    with zipfile.ZipFile(fixture("state_dict.pth")) as real, zipfile.ZipFile(tmp_path / "written.pth") as ours:
        real_names = {n.split("/", 1)[1] for n in real.namelist()} - {".data/version", ".data/serialization_id"}
        assert {"data.pkl", "byteorder"} <= real_names
        assert {"data.pkl", "byteorder"} <= {n.split("/", 1)[1] for n in ours.namelist()}
