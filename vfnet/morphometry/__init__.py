"""Vertebral-body morphometry: heights along each vertebra's own axis and the Genant ratios.

`frame` orients a vertebra (its cranio-caudal axis from the neighbours' centres), `heights` measures its body's
anterior, middle and posterior heights on a grid aligned with that frame, `genant` turns the heights of a
whole spine into the ratios a radiologist reads (against the own posterior height, and against the height the
spine's other vertebrae lead one to expect) and the feature vector the network's morphometric branch receives.
documentation/morphometry.md explains the method.
"""
