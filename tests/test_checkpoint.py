import os
import random

import numpy as np
import pytest
import torch

from vfnet.errors import CheckpointError
from vfnet.model.checkpoint import (capture_rng_state, check_network_plan, load_checkpoint, restore_rng_state,
                                       save_checkpoint)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    save_checkpoint(tmp_path / "c.pth", {"epoch": 3, "network_weights": weights, "log": {"x": [1.0, None]},
                                         "fold": "all"})
    payload = load_checkpoint(tmp_path / "c.pth")
    assert payload["epoch"] == 3 and payload["fold"] == "all" and payload["log"] == {"x": [1.0, None]}
    assert torch.equal(payload["network_weights"]["w"], weights["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]  # no temporary file left behind


def test_pickled_object_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"format": "vfnet-checkpoint-1", "evil": _RunsCodeWhenUnpickled(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth.*pickled"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_broken_or_missing_files_raise_checkpoint_error(tmp_path, content):
    path = tmp_path / "broken.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_checkpoint(path)


def test_truncated_checkpoint_raises_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path / "c.pth", {"w": torch.randn(1000)})
    data = (tmp_path / "c.pth").read_bytes()
    (tmp_path / "c.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="c.pth"):
        load_checkpoint(tmp_path / "c.pth")


def test_foreign_torch_file_and_mismatched_plan_are_refused(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not a vfnet checkpoint"):
        load_checkpoint(tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="another network plan"):
        check_network_plan("c.pth", {"network_plan": {"stem_channels": 8}}, {"stem_channels": 16})


def test_rng_states_survive_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pth", {"rng": capture_rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_checkpoint(tmp_path / "c.pth")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
