"""CT intensity channels: `(clip(hu, lo, hi) - center) / scale`, one channel per planned window."""
from typing import Any, Sequence

import numpy as np


def normalize_ct(hu: np.ndarray, ct_channels: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """One float32 array per planned CT channel (the plan's `preprocessing.ct_channels`)."""
    channels = []
    for channel in ct_channels:
        low, high = channel["clip"]
        clipped = np.clip(hu, float(low), float(high))
        channels.append(((clipped - float(channel["center"])) / float(channel["scale"])).astype(np.float32))
    return channels
