"""Django finds an app's models in its `models` module: the stages keep their own
(`indexing/models.py`, `learning/models.py`) and this module only names them for Django.
Code imports them from their stage, never from here."""

from recommender.indexing.models import IndexSnapshot
from recommender.learning.models import CoUse, LearningState, MemoryEntry, RankerModel, ToolStats, UserToolStats

__all__ = ["CoUse", "IndexSnapshot", "LearningState", "MemoryEntry", "RankerModel", "ToolStats", "UserToolStats"]
