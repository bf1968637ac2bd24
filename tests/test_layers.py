"""Imports point one way (DESIGN.md): cli -> orchestration -> stages -> model, dataset and small helpers."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vfnet"
STAGES = ("planning", "preprocessing", "training", "inference", "evaluation", "selection")
LOWER = ("model", "dataset", "paths", "fileio", "errors", "labels", "devices")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("vfnet.")}


def _modules(part: str) -> list[Path]:
    target = PACKAGE / part
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def _offending(parts: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)} imports {name}" for part in parts for path in _modules(part)
            for name in sorted(_imports(path)) if name.split(".")[1] in forbidden]


def test_lower_layer_imports_no_stage_cli_or_orchestration():
    assert _offending(LOWER, STAGES + ("cli", "plan_and_preprocess")) == []


def test_stages_import_neither_cli_nor_orchestration():
    assert _offending(STAGES, ("cli", "plan_and_preprocess")) == []


@pytest.mark.parametrize("stage", ["inference", "evaluation", "planning", "preprocessing", "selection"])
def test_only_training_imports_training(stage):
    assert _offending((stage,), ("training",)) == []


def test_training_does_not_import_inference():
    assert _offending(("training",), ("inference",)) == []


def test_inference_does_not_import_selection():
    # selection fits with inference's functions (decisions.py); the reverse would make a cycle.
    assert _offending(("inference",), ("selection",)) == []


def test_the_moved_modules_left_no_shims():
    for old in ("training/network.py", "training/checkpoint.py", "training/splits.py", "planning/pipeline.py"):
        assert not (PACKAGE / old).exists(), old
