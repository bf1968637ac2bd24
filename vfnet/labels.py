"""Vertebra label ids (VerSe convention), level names and the TotalSegmentator mapping."""

GENANT_GRADES = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}
NUM_GRADES = len(GENANT_GRADES)


def _verse_level_names() -> dict[int, str]:
    names = {i: f"C{i}" for i in range(1, 8)}
    names.update({7 + i: f"T{i}" for i in range(1, 13)})
    names.update({19 + i: f"L{i}" for i in range(1, 7)})
    names.update({26: "S1", 27: "Cocc", 28: "T13"})
    return names


VERSE_LEVELS: dict[int, str] = _verse_level_names()
LEVEL_TO_VERSE: dict[str, int] = {name: label for label, name in VERSE_LEVELS.items()}
# Labels of vertebrae that can be graded (not sacrum or coccyx).
GRADABLE_LABELS = frozenset(label for label in VERSE_LEVELS if label not in (26, 27))

# TotalSegmentator v2 "total" task (2.x): 25 = sacrum, 26 = S1, 27 = L5 ... 31 = L1, 32 = T12 ... 43 = T1,
# 44 = C7 ... 50 = C1.
TOTALSEGMENTATOR_TO_VERSE: dict[int, int] = {26: 26}
TOTALSEGMENTATOR_TO_VERSE.update({27 + i: 24 - i for i in range(5)})  # 27 L5 -> 24 ... 31 L1 -> 20
TOTALSEGMENTATOR_TO_VERSE.update({32 + i: 19 - i for i in range(12)})  # 32 T12 -> 19 ... 43 T1 -> 8
TOTALSEGMENTATOR_TO_VERSE.update({44 + i: 7 - i for i in range(7)})  # 44 C7 -> 7 ... 50 C1 -> 1

# TotalSegmentator v1 "total" task (1.x; "total_v1" in its class map): 18 = L5 ... 22 = L1, 23 = T12 ... 34 = T1,
# 35 = C7 ... 41 = C1, 92 = sacrum; there is no S1. The same id names another level in v2 (v1's 27 is T8).
TOTALSEGMENTATOR_V1_TO_VERSE: dict[int, int] = {18 + i: 24 - i for i in range(5)}   # 18 L5 -> 24 ... 22 L1 -> 20
TOTALSEGMENTATOR_V1_TO_VERSE.update({23 + i: 19 - i for i in range(12)})  # 23 T12 -> 19 ... 34 T1 -> 8
TOTALSEGMENTATOR_V1_TO_VERSE.update({35 + i: 7 - i for i in range(7)})    # 35 C7 -> 7 ... 41 C1 -> 1
TOTALSEGMENTATOR_SACRUM = {"v1": 92, "v2": 25}
TOTALSEGMENTATOR_V2_SPINAL_CORD = 79
TOTALSEGMENTATOR_MAX_ID = {"v1": 104, "v2": 117}

# TotalSegmentator's per-structure files: vertebrae_L1.nii.gz etc.
TOTALSEGMENTATOR_FILE_TO_VERSE: dict[str, int] = {
    f"vertebrae_{name}": label for label, name in VERSE_LEVELS.items() if label not in (27, 28)}


def level_name(label: int) -> str:
    return VERSE_LEVELS.get(int(label), f"label{int(label)}")


def nnunet_label_names() -> dict[str, int]:
    """dataset.json `labels` for nnU-Net: every VerSe id 0-28, consecutive as nnU-Net requires."""
    names = {"background": 0}
    for label in range(1, 29):
        names[VERSE_LEVELS[label]] = label
    return names


def spine_order(label: int) -> float:
    """Head-to-feet position of a VerSe id: T13 (28) sits between T12 (19) and L1 (20)."""
    return 19.5 if int(label) == 28 else float(label)


def level_ranges(levels: list[str]) -> str:
    """'T10-L5' for adjacent levels, else the runs joined ('T4-T6, L1'); unknown names are listed as they are."""
    known = sorted((spine_order(LEVEL_TO_VERSE[name]), name) for name in set(levels) if name in LEVEL_TO_VERSE)
    runs: list[list[tuple[float, str]]] = []
    for position, name in known:
        if runs and position - runs[-1][-1][0] <= 1:  # T12, T13, L1 and T12, L1 are both unbroken
            runs[-1].append((position, name))
        else:
            runs.append([(position, name)])
    parts = [run[0][1] if len(run) == 1 else f"{run[0][1]}-{run[-1][1]}" for run in runs]
    return ", ".join(parts + sorted(name for name in set(levels) if name not in LEVEL_TO_VERSE))
