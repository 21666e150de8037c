"""docs/migrating_from_matterport.md: its YAML snippets are valid configs with the values the
page says they have."""
import re

from detection.config import Config
from tests.conftest import REPO

PAGE = REPO / "docs" / "migrating_from_matterport.md"


def test_every_yaml_snippet_loads(tmp_path):
    snippets = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)
    assert len(snippets) >= 2
    for i, snippet in enumerate(snippets):
        # _BASE_ names a shipped config: resolve it in configs/.
        text = re.sub(r"^_BASE_: (\S+)", lambda m: f"_BASE_: {REPO / 'configs' / m.group(1)}", snippet, flags=re.M)
        (tmp_path / f"s{i}.yaml").write_text(text)
        Config.from_yaml(tmp_path / f"s{i}.yaml")
    balloon = Config.from_yaml(tmp_path / f"s{[i for i, s in enumerate(snippets) if 'balloon' in s][0]}.yaml")
    assert (balloon.BACKBONE, balloon.NUM_CLASSES, balloon.CLASS_NAMES) == ("matterport_resnet101", 2, ["balloon"])
    assert balloon.BOX_FRAME == "normalized" and [s["layers"] for s in balloon.TRAIN_STAGES] == ["heads", "4+", "all"]
