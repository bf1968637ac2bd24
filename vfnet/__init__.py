"""vfnet: self-configuring vertebral fracture grading (Genant 0-3) in CT."""

__version__ = "0.1.0"
