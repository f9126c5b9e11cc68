"""The parts of ``bench/recommend_latency.py`` (see its docstring for what it measures and how
to run it): the catalog, the traffic, the processes under test, the learning probe, the report.

Importing the package is cheap (no Django, no HTTP client): ``django_probe`` runs as
``python -m bench.latency.django_probe`` in a subprocess and imports it too.
"""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the project root, where manage.py is
DATASETS = ROOT.parent / "shared" / "datasets"
