"""vfnet_find_best_configuration's work, after cross-validation: choose a configuration (or an ensemble of them)
from the pooled out-of-fold predictions, calibrate it, choose its operating point and review threshold, and write
the inference instructions that vfnet_predict follows. One module per step; `run.py` calls them in order.
"""
