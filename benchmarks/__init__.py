"""Botify's benchmarks: speed and memory, measured as ratios against a baseline run side by side.

Each module here (`sim`, `service`, `training`) has a `main(argv)` and runs alone as
`python -m benchmarks.NAME`; `python -m benchmarks` runs them all (or those named).
Results are printed and written as JSON under `benchmarks/results/` (git-ignored).
"""
