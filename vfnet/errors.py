"""The one exception type that carries a message meant for the user.

Every check on user input raises `VfnetError` with a sentence that names the file and the problem.
The command-line wrapper (`vfnet.cli.common.run_cli`) prints that sentence instead of a traceback.
"""


class VfnetError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""


class DatasetError(VfnetError):
    """A raw dataset that cannot be read or is inconsistent."""


class PlanError(VfnetError):
    """A plans file that is missing, malformed or inconsistent with the data."""


class CheckpointError(VfnetError):
    """A checkpoint that is missing, unsafe or does not match the plan."""
