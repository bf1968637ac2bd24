"""Progress for people and for log files: a tqdm bar on a terminal, plain lines (or nothing) otherwise.

A redirected log must not fill with carriage-return bar redraws (a demo log grew to 140 KB that way), so every
progress bar in vfnet is made here: on a terminal it is tqdm; in a file it is one line per finished item where
an item is worth a line (a case), and silent where it is not (a training batch: the epoch line says enough).
"""
import sys
from typing import Any, Iterable, Iterator

from tqdm import tqdm


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bar(iterable: Iterable | None = None, *, desc: str, unit: str, total: int | None = None,
                 leave: bool = True, line_per_item: bool = False, disable: bool = False) -> Any:
    """tqdm on a terminal; else `LineProgress` (line_per_item) or a silent tqdm with the same interface.

    The keywords are tqdm's, so a call site changes only the function's name."""
    if disable or not on_terminal():
        if line_per_item and not disable:
            return LineProgress(iterable, desc, unit, total)
        return tqdm(iterable, total=total, disable=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)


class LineProgress:
    """The part of tqdm's interface vfnet uses, printing `description: n/total unit (postfix)` per item."""

    def __init__(self, iterable: Iterable | None, description: str, unit: str, total: int | None):
        self.iterable, self.description, self.unit = iterable, description, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix = 0, ""

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def update(self, count: int = 1) -> None:
        self.n += count
        of_total = f"/{self.total}" if self.total is not None else ""
        suffix = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.description}: {self.n}{of_total} {self.unit}{suffix}", flush=True)

    def close(self) -> None:
        return None
