"""What every command shares: user errors become one line on stderr and exit code 1, not a traceback."""
import argparse
import sys
import traceback
from typing import Callable, Sequence

from vfnet.errors import VfnetError


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full Python traceback on errors")


def run_cli(program: str, main: Callable[[Sequence[str] | None], int | None],
            argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)`; turn VfnetError (and Ctrl-C) into a clear message and a non-zero exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    try:
        return int(main(arguments) or 0)
    except VfnetError as error:
        if debug:
            traceback.print_exc()
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted.", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{program}: error: out of memory. Use fewer worker processes (-np) or a smaller budget.",
              file=sys.stderr)
        return 1
    except Exception as error:  # an unexpected bug: one line, and the traceback only on request
        if debug:
            traceback.print_exc()
        print(f"{program}: internal error: {type(error).__name__}: {error}. Rerun with --debug for the "
              f"traceback and report it.", file=sys.stderr)
        return 2
