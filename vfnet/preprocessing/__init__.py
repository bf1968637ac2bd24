"""Canonical crops around each vertebra: the one code path for training and prediction."""
