"""toolrec's pure ranking engine: numpy, faiss, bm25s, lightgbm and scikit-learn only.

Nothing here imports Django, DRF, Celery, Redis or Qdrant (a CI check enforces it):
frozen dataclasses and arrays in and out, configuration passed in, randomness through
an explicit ``numpy.random.Generator``. ``recommender/services.py`` is the one place
that turns ORM rows into engine inputs.
"""
