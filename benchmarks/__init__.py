"""Benchmarks: scenarios that print their figures and write JSON to ``benchmarks/results/``; their
tables and findings are in ``benchmarks/README.md``. Run one from the repository root::

    .venv/bin/python -m benchmarks.quality
    .venv/bin/python -m benchmarks.gpu_regime --profile rtx5090

Scenarios import only ``benchmarks.harness`` (server lifecycle, corpora, app configs per setup,
memory and CPU accounting, the results writer) and the project itself.
"""
