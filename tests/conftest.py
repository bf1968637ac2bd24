"""Shared fixtures: isolated vfnet folders per test, and the optional external data beside the repo."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_folder() -> Path:
    """../shared/data beside the checkout (or $VFNET_SHARED_DATA); tests using it skip when it is absent."""
    return Path(os.environ.get("VFNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    folder = shared_data_folder()
    if not folder.is_dir():
        pytest.skip(f"external data not present at {folder}")
    return folder


@pytest.fixture
def vfnet_folders(tmp_path, monkeypatch):
    """Point vfnet_raw / vfnet_preprocessed / vfnet_results at fresh folders under tmp_path."""
    folders = {}
    for name in ("vfnet_raw", "vfnet_preprocessed", "vfnet_results"):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
        folders[name] = folder
    return folders


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share two cores; keep torch from oversubscribing them."""
    try:
        import torch
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except ImportError:
        pass
    yield
