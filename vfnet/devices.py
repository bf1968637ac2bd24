"""The compute device and planning budget every command starts from, with the reason it is printed with.

`auto` (the default) takes a CUDA GPU, else Apple's MPS, else the CPU, so following the README on a GPU machine
trains on the GPU. The planning budget `auto` is `gpu` only when a CUDA GPU is visible: MPS and CPU machines get
the cpu plan, whose epochs the gpu plan's network would not fit. torch is imported inside the functions so that
`--help` stays fast.
"""
from vfnet.errors import VfnetError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
AUTO = "auto"


def _mps_available() -> bool:
    import torch
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _gpu_name() -> str:
    import torch
    count = torch.cuda.device_count()
    return torch.cuda.get_device_name(0) + (f" (+{count - 1} more)" if count > 1 else "")


def check_device(name: str, option: str = "-device") -> None:
    """Refuse a device torch cannot use here, naming the option to change."""
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise VfnetError(f"{option} cuda was asked for, but PyTorch sees no CUDA GPU; use {option} auto or cpu.")
    if name == "mps" and not _mps_available():
        raise VfnetError(f"{option} mps was asked for, but PyTorch has no MPS support here; use {option} auto or cpu.")
    if name not in DEVICE_CHOICES:
        raise VfnetError(f"{option} {name} is not one of {', '.join(DEVICE_CHOICES)}.")


def choose_device(requested: str = AUTO, option: str = "-device") -> tuple[str, str]:
    """(device type, why): `auto` resolved, an explicit device checked."""
    if requested != AUTO:
        check_device(requested, option)
        return requested, f"{option} {requested} as given"
    import torch
    if torch.cuda.is_available():
        return "cuda", f"{option} auto: CUDA GPU {_gpu_name()}"
    if _mps_available():
        return "mps", f"{option} auto: no CUDA GPU, Apple MPS is available"
    return "cpu", f"{option} auto: neither a CUDA GPU nor MPS is visible to PyTorch"


def choose_budget(requested: str = AUTO) -> tuple[str, str]:
    """(budget name, why): `auto` is gpu when a CUDA GPU is visible, else cpu."""
    if requested != AUTO:
        return requested, f"--budget {requested} as given"
    import torch
    if torch.cuda.is_available():
        return "gpu", f"--budget auto: CUDA GPU {_gpu_name()} is visible"
    return "cpu", ("--budget auto: no CUDA GPU is visible to PyTorch (training on MPS or CPU gets the cpu plan; "
                   "--budget gpu plans for a GPU elsewhere)")
