"""Device and budget auto-detection (vfnet.devices) and the commands' defaults; no GPU needed."""
import pytest
import torch

from vfnet import devices
from vfnet.cli import plan_and_preprocess, plan_experiment, predict, train
from vfnet.errors import VfnetError


def _machine(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda else 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    monkeypatch.setattr(devices, "_mps_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_takes_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _machine(monkeypatch, cuda, mps)
    device, reason = devices.choose_device("auto")
    assert device == expected and "auto" in reason
    assert ("Test GPU" in reason) == cuda


def test_budget_auto_is_gpu_only_with_cuda(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=False)
    assert devices.choose_budget("auto")[0] == "gpu"
    _machine(monkeypatch, cuda=False, mps=True)
    budget, reason = devices.choose_budget("auto")
    assert budget == "cpu" and "no CUDA GPU" in reason
    assert devices.choose_budget("gpu") == ("gpu", "--budget gpu as given")


def test_explicit_devices_are_kept_or_refused_with_the_fix(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    assert devices.choose_device("cpu")[0] == "cpu"
    for name in ("cuda", "mps"):
        with pytest.raises(VfnetError, match=f"-device {name} was asked for.*use -device auto or cpu"):
            devices.choose_device(name)
    _machine(monkeypatch, cuda=True, mps=False)
    assert devices.choose_device("cuda") == ("cuda", "-device cuda as given")


def test_commands_default_to_auto():
    assert train.build_parser().parse_args(["-d", "1", "-f", "0"]).device == "auto"
    assert predict.build_parser().parse_args(["-i", "x", "-o", "y", "-d", "1"]).device == "auto"
    for command in (plan_and_preprocess, plan_experiment):
        args = command.build_parser().parse_args(["-d", "1"])
        assert args.budget == "auto" and args.measure is False
    assert plan_and_preprocess.build_parser().parse_args(["-d", "1", "--budget", "gpu"]).budget == "gpu"


def test_the_planning_budget_is_printed_with_its_reason(monkeypatch, capsys):
    _machine(monkeypatch, cuda=False, mps=False)
    assert plan_and_preprocess.planning_budget("auto") == "cpu"
    assert "Planning for the cpu budget (--budget auto: no CUDA GPU" in capsys.readouterr().out
