import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_config_reference_is_current():
    done = subprocess.run([sys.executable, "tools/gen_config_docs.py", "--check"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_config_reference_lists_every_key():
    from detection.config import KEYS

    text = (REPO / "docs" / "config.md").read_text()
    for name in KEYS:
        assert f"| `{name}` |" in text, name
