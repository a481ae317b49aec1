"""Benchmarks for hybrid: fixed inputs, measured results, written reports (not tests: nothing asserts).

Each benchmark is a module with ``main(argv) -> int``, runnable on its own
(``python -m benchmarks.target_size --quick``) or through ``python -m benchmarks NAME``; a bare
``python -m benchmarks [options]`` runs the matrix (every path on every input, ``benchmarks.matrix``).
Results go to ``benchmarks/results/<name>.json`` and ``.md``; ``--quick`` runs write to
``benchmarks/results/quick/`` (ignored by git) so a smoke run never replaces a real one.
"""

# name -> module with main(argv); every one accepts --quick, --out, --preset and --repeat.
BENCHMARKS = {
    "matrix": "benchmarks.matrix",
    "target_size": "benchmarks.target_size",
    "cloud_overhead": "benchmarks.cloud_overhead",
    "quality": "benchmarks.quality",
    "batch_throughput": "benchmarks.batch_throughput",
    "estimates": "benchmarks.estimates",
}
