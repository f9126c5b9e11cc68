"""Django's admin autodiscovery imports each app's `admin` module: the stages register
their own models."""

from recommender.indexing import admin as indexing_admin
from recommender.learning import admin as learning_admin

__all__ = ["indexing_admin", "learning_admin"]
