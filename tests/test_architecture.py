"""docs/architecture.md names modules that exist, and the imports go the way it says."""

import ast
import re

from tests.conftest import REPO

DOC = REPO / "docs" / "architecture.md"
_TOKEN = re.compile(r"`([^`]+)`")


def _module_path(token):
    """The file or folder a backticked token names (relative to the repository, or to
    detection/), or None when the token is not a path."""
    if "<" in token or not re.fullmatch(r"[\w/.]+(\.py|\.md|/)", token):
        return None
    for base in (REPO, REPO / "detection"):
        if (base / token).exists():
            return base / token
    matches = list((REPO / "detection").rglob(token)) if "/" not in token else []
    return matches[0] if matches else REPO / token  # REPO / token: reported as missing


def named_paths(text):
    return [(token, path) for token in _TOKEN.findall(text) if (path := _module_path(token)) is not None]


def test_every_module_the_architecture_page_names_exists():
    named = named_paths(DOC.read_text())
    assert len(named) > 40  # the page names the modules; the check must see them
    assert [token for token, path in named if not path.exists()] == []


def test_every_registry_the_page_names_is_defined_in_its_module():
    # A line "`modeling/heads.py` `RPN_HEADS`, ..." names RPN_HEADS as defined in that module.
    checked = 0
    for line in DOC.read_text().splitlines():
        module = None
        for token in _TOKEN.findall(line):
            path = _module_path(token)
            if path is not None and path.suffix == ".py":
                module = path.read_text()
            elif module is not None and re.fullmatch(r"[A-Z][A-Z_]+|\w+\(\)", token):
                name = token.rstrip("()")
                assert re.search(rf"^(def )?{name}\b", module, re.MULTILINE), (token, line)
                checked += 1
    assert checked >= 10


def test_the_name_check_fails_on_a_missing_module():
    named = named_paths("`core/boxes.py`, `layers/no_such.py`")
    assert [token for token, path in named if not path.exists()] == ["layers/no_such.py"]


# Each package's rank: a module may import from a lower rank or its own package only
# (the "Direction of imports" line of the page).
RANKS = {"choices": 0, "core": 1, "config": 2, "layers": 2, "data": 3, "modeling": 3, "matterport_config": 3,
         "evaluation": 4, "analysis": 4, "categories": 4, "visualize": 4,
         "engine": 5, "export": 6, "cli": 5, "inference": 6}

# "core/, layers/ and modeling/ never import data/, engine/ or config.py" (the page).
NEVER = {package: ("config", "data", "engine") for package in ("core", "layers", "modeling")}


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("detection"):
            yield from ([f"{node.module}.{a.name}" for a in node.names] if node.module == "detection" else
                        [node.module])
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("detection"))


def _package(relative_parts):
    return relative_parts[0].removesuffix(".py")


def test_imports_go_one_way():
    # Fails on, e.g., a layer reading the Config (layers -> config) or core importing a layer.
    wrong = []
    for path in sorted((REPO / "detection").rglob("*.py")):
        parts = path.relative_to(REPO / "detection").parts
        if parts == ("__init__.py",):
            continue  # the package's public names re-export from everywhere
        source = _package(parts)
        for name in _imports(path):
            target = name.split(".")[1] if "." in name else None
            if target and target != source and target in RANKS and RANKS[target] >= RANKS[source]:
                wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert wrong == []
    assert set(RANKS) == {_package(p.relative_to(REPO / "detection").parts)
                          for p in (REPO / "detection").glob("*") if p.name != "__init__.py"
                          and (p.suffix == ".py" or (p / "__init__.py").exists())}
