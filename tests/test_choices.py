"""Choice names are written once (detection/choices.py) and each has exactly one implementation;
no module outside a registry branches on a convention's name; every config key is read."""

import pathlib
import re

import pytest

from detection import choices

REPO = pathlib.Path(__file__).resolve().parents[1]


def _registries():
    from detection.core import anchors, frames
    from detection.data import datasets, resize
    from detection.engine import predictor
    from detection.layers import detections, proposals, roi_align
    from detection.modeling import backbones, fpn, heads

    return [
        ("BACKBONE", choices.BACKBONES, backbones.backbones()),
        ("FPN", choices.FPNS, fpn.FPNS),
        ("ANCHOR_GENERATOR", choices.ANCHOR_GENERATORS, anchors.ANCHOR_GENERATORS),
        ("PROPOSAL_SELECTION", choices.PROPOSAL_SELECTIONS, proposals.PROPOSAL_SELECTIONS),
        ("RPN_HEAD", choices.RPN_HEADS, heads.RPN_HEADS),
        ("BOX_HEAD", choices.BOX_HEADS, heads.BOX_HEADS),
        ("MASK_HEAD", choices.MASK_HEADS, heads.MASK_HEADS),
        ("ROI_ALIGN_MODE", choices.ROI_ALIGN_MODES, roi_align.ROI_ALIGN_MODES),
        ("BOX_FRAME", choices.BOX_FRAMES, frames.BOX_FRAMES),
        ("DETECTION_CLASSES_PER_ROI", choices.CLASSES_PER_ROI, detections.CLASS_SELECTIONS),
        ("MASK_PASTE", choices.MASK_PASTES, predictor.MASK_PASTERS),
        ("IMAGE_RESIZE_METHOD", choices.RESIZE_METHODS, resize.RESIZE_METHODS),
        ("IMAGE_RESIZE_MODE", choices.RESIZE_MODES, resize.RESIZE_MODES),
        ("DATASET_FORMAT", choices.DATASET_FORMATS, datasets.DATASET_FORMATS),
    ]


def test_every_choice_has_an_implementation_and_every_implementation_a_choice():
    from detection.config import KEYS

    for key, names, registry in _registries():
        assert set(names) == set(registry), key
        # The config offers exactly these names: every value it accepts has an implementation.
        check = KEYS[key].check
        for name in names:
            assert check.convert(name) == name, key
        with pytest.raises(TypeError):
            check.convert("no_such_" + key.lower())


def test_derived_choices_name_registered_entries():
    from detection.modeling import backbones

    registry = backbones.backbones()
    assert {n for n, b in registry.items() if not b.imagenet} == set(choices.NO_PRETRAINED_BACKBONES)
    assert set(choices.MATTERPORT_NAMED_BACKBONES) | set(choices.MATTERPORT_NAMED_BACKBONES.values()) <= set(registry)
    assert choices.MATTERPORT_NAMED_HEADS in choices.RPN_HEADS
    assert set(choices.NORMALIZED_PADDING_RESIZE_METHODS) <= set(choices.RESIZE_METHODS)
    assert set(choices.FREE_MAX_DIM_RESIZE_MODES) <= set(choices.RESIZE_MODES)
    # A fixed-size mode pads every image to IMAGE_MAX_DIM square; the others to a size of their own.
    from detection.data.resize import PYTHON_OPS, RESIZE_MODES

    for name, mode in RESIZE_MODES.items():
        sizes = {mode.padded_shape(resized, 128, PYTHON_OPS) for resized in ((100, 60), (50, 128))}
        assert (sizes == {(128, 128)}) == (name in choices.FIXED_SIZE_RESIZE_MODES), name


def test_an_unknown_name_is_one_line_naming_the_key():
    from detection.data.resize import resize_geometry

    with pytest.raises(ValueError,
                       match=r"^unknown IMAGE_RESIZE_METHOD 'pil'; expected one of opencv, matterport, torchvision$"):
        resize_geometry(10, 10, "square", 8, 64, method="pil")


def _sources():
    for folder in ("detection", "tools"):
        for path in sorted((REPO / folder).rglob("*.py")):
            yield path


# Convention names that also are ordinary words elsewhere ("all" layers, a "standard" deviation)
# are caught through the config key they are compared with.
_CONVENTION_NAMES = sorted({n for names in (choices.ROI_ALIGN_MODES, choices.BOX_FRAMES, choices.MASK_PASTES,
                                            choices.RESIZE_METHODS, choices.BOX_HEADS, choices.MASK_HEADS,
                                            choices.BACKBONES) for n in names})
_NAMES = "|".join(_CONVENTION_NAMES)
_BRANCH = re.compile(
    r"(==|!=)\s*['\"](%s)['\"]|['\"](%s)['\"]\s*(==|!=|in\b)" % (_NAMES, _NAMES)
    + r"|(RESIZE_METHOD|RESIZE_MODE|ROI_ALIGN_MODE|MASK_PASTE|CLASSES_PER_ROI|BOX_FRAME|_HEAD|BACKBONE|\.frame|\.method"
    r"|classes_per_roi)\s*(==|!=|in\s*\()")


def branches_on_convention_names(text):
    """The lines of ``text`` that compare a value with a convention's name."""
    return [line.strip() for line in text.splitlines() if _BRANCH.search(line)]


def test_no_module_branches_on_a_conventions_name():
    found = {str(p.relative_to(REPO)): branches_on_convention_names(p.read_text()) for p in _sources()}
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_the_branch_check_sees_the_old_branches():
    # What the modules held before the registries (so the check above can fail).
    assert branches_on_convention_names('        if geometry.method == "matterport":')
    assert branches_on_convention_names('    matterport = config.IMAGE_RESIZE_METHOD == "matterport"')
    assert branches_on_convention_names('aligned_masks=c.ROI_ALIGN_MODE != "matterport", use_mask=c.USE_MASK,')
    assert branches_on_convention_names('    if classes_per_roi == "all":')
    assert branches_on_convention_names('        if self.frame == "pixels":')
    assert branches_on_convention_names('    if config.IMAGE_RESIZE_MODE == "square":')
    assert not branches_on_convention_names('    if mode == "always" and has_gpu:')


def unread_config_keys(sources, keys):
    """Keys of ``keys`` that no text of ``sources`` reads: as an attribute (``config.KEY``), a
    quoted name (``values["KEY"]``, ``getattr(config, "KEY")``), or the end of a name built
    in an f-string (``f"{prefix}_IMAGES"``)."""
    text = "\n".join(sources)
    built = set(re.findall(r"\{\w+\}_([A-Z][A-Z0-9_]+)", text))
    return [k for k in keys
            if not re.search(r"\.%s\b|['\"]%s['\"]" % (k, k), text) and not any(k.endswith("_" + s) for s in built)]


def _code_reading_config():
    """Every module and tool, detection/config.py without its key definitions."""
    for path in _sources():
        text = path.read_text()
        if path == REPO / "detection" / "config.py":
            text = "\n".join(line for line in text.splitlines() if not line.startswith("_key("))
        yield text


def test_every_config_key_is_read_somewhere():
    from detection.config import KEYS

    assert unread_config_keys(list(_code_reading_config()), KEYS) == []


def test_the_read_check_finds_a_key_nobody_reads():
    sources = ["scale = config.IMAGE_MIN_DIM", 'paths = getattr(config, f"{prefix}_IMAGES")',
               "# IMAGE_PADDING in a comment is not a read"]
    assert unread_config_keys(sources, ["IMAGE_PADDING", "IMAGE_MIN_DIM", "VAL_IMAGES"]) == ["IMAGE_PADDING"]


def test_a_removed_key_says_what_replaces_it():
    from detection.config import Config, ConfigError

    with pytest.raises(ConfigError, match="IMAGE_PADDING was removed: .*IMAGE_RESIZE_METHOD"):
        Config({"IMAGE_PADDING": "center"})


def test_reading_a_config_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from detection import choices, config; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
