"""Benchmarks of the PUJA INDAH service (`make bench`): each scenario beside its baseline, measured in one run.

See docs/performance.md for what each scenario measures and the targets.
"""
