"""install_requires holds exactly what vfnet and its converters import: nothing installed and never used."""
import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml"}   # distribution -> module, where they differ


def _required_distributions() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and any(keyword.arg == "install_requires" for keyword in node.keywords))
    requirements = next(keyword.value for keyword in call.keywords if keyword.arg == "install_requires")
    return {re.split(r"[<>=!~;\[ ]", element.value)[0] for element in requirements.elts}


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in list((REPO / "vfnet").rglob("*.py")) + list((REPO / "dataset_conversion").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"vfnet", "__future__"}


def test_every_requirement_is_imported_and_every_import_is_required():
    required = {IMPORT_NAMES.get(name.lower(), name) for name in _required_distributions()}
    imported = _imported_top_level_modules()
    assert required - imported == set(), "declared in setup.py but never imported"
    assert imported - required == set(), "imported but not declared in setup.py"
    assert not {"batchgenerators", "acvl_utils"} & required
