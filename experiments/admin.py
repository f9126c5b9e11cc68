from __future__ import annotations

from django.contrib import admin

from experiments.models import Experiment, Variant


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 1


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "unit", "status", "started_at", "stopped_at")
    list_filter = ("status", "unit")
    search_fields = ("key", "name")
    inlines = [VariantInline]
