"""Evaluation: metrics with bootstrap intervals, vertebral-body morphometry, reports and the CV summary."""
