"""Run one function per case in worker processes, with a progress bar, collecting failures instead of stopping.

Each worker handles one case at a time, so memory is bounded by `num_processes` cases in flight.
"""
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import SimpleITK as sitk

from vfnet.errors import VfnetError
from vfnet.progress_bars import progress_bar


@dataclass
class CaseOutcome:
    case_id: str
    result: Any = None
    error: str | None = None


def _single_threaded_worker() -> None:
    # Each process already is one unit of parallelism; ITK threads on top would oversubscribe the cores.
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _run_one(function: Callable[[Any], Any], case_id: str, item: Any) -> CaseOutcome:
    try:
        return CaseOutcome(case_id, result=function(item))
    except VfnetError as error:
        return CaseOutcome(case_id, error=str(error))
    except MemoryError:
        return CaseOutcome(case_id, error="out of memory (use fewer worker processes, -np)")
    except Exception as error:  # an unexpected failure in one case must not stop the others
        return CaseOutcome(case_id, error=f"unexpected {type(error).__name__}: {error}")


def map_cases(function: Callable[[Any], Any], items: Sequence[tuple[str, Any]], num_processes: int,
              description: str) -> list[CaseOutcome]:
    """Apply `function` to each (case_id, item); returns outcomes in input order."""
    if num_processes < 1:
        raise VfnetError(f"The number of processes (-np) must be at least 1, not {num_processes}.")
    outcomes: dict[str, CaseOutcome] = {}
    with progress_bar(total=len(items), desc=description, unit="cases", line_per_item=True,
                      disable=not items) as progress:
        if num_processes == 1 or len(items) <= 1:
            for case_id, item in items:
                outcomes[case_id] = _run_one(function, case_id, item)
                progress.set_postfix_str(_done(outcomes[case_id]), refresh=False)
                progress.update()
        else:
            with ProcessPoolExecutor(max_workers=min(num_processes, len(items)),
                                     initializer=_single_threaded_worker) as pool:
                futures = [pool.submit(_run_one, function, case_id, item) for case_id, item in items]
                for future in as_completed(futures):
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        raise VfnetError(f"A worker process died during '{description}' (most often out of "
                                         f"memory); rerun with fewer processes (-np).") from None
                    outcomes[outcome.case_id] = outcome
                    progress.set_postfix_str(_done(outcome), refresh=False)
                    progress.update()
    return [outcomes[case_id] for case_id, _ in items]


def _done(outcome: CaseOutcome) -> str:
    return f"{outcome.case_id} failed" if outcome.error else outcome.case_id
