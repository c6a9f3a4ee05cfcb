"""Evaluation: compare runtimes and precisions, bench speed and memory, tune, selftest; metrics,
degradations and the reference they measure against."""
