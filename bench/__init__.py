"""Benchmarks of rdev: each module starts its own system, measures, and prints a table.

Run them all with `make bench` (`python -m bench`), or one with
`python -m bench.<module>`; JSON results land in bench/results/.
"""
