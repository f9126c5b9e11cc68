from django.urls import path

from dashboard.views.catalog import catalog_page
from dashboard.views.experiments import experiment_page, experiments_page
from dashboard.views.learning import learning_page
from dashboard.views.overview import overview_page
from dashboard.views.tools import tool_page, tools_page

app_name = "dashboard"

urlpatterns = [
    path("", overview_page, name="overview"),
    path("tools/", tools_page, name="tools"),
    path("tools/<int:tool_id>/", tool_page, name="tool"),
    path("learning/", learning_page, name="learning"),
    path("catalog/", catalog_page, name="catalog"),
    path("experiments/", experiments_page, name="experiments"),
    path("experiments/<slug:key>/", experiment_page, name="experiment"),
]
