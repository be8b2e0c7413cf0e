"""SLAF's benchmarks: ``python -m benches`` runs the comparison suite (see ``suite/``); the
``bench_*.py`` scripts measure one area each and run as plain scripts."""
