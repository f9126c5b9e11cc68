"""Benchmarks (see README.md). A package so that ``bench.latency`` has one module name for
Python (``python -m bench.latency.django_probe``) and for mypy; the scripts run as files."""
