"""Every write to the catalog. Each top-level service owns its transaction and, once the
change is committed, asks for a (debounced) index rebuild."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from catalog import naming
from catalog.importers import Rejection, ToolSpec, make_spec
from catalog.models import Tool
from toolrec_site.errors import Conflict
from toolrec_site.scheduling import index_rebuild_schedule


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [{"position": r.position, "reason": r.reason} for r in self.rejected],
        }


def _schedule_rebuild() -> None:
    transaction.on_commit(index_rebuild_schedule)


def _apply(tool: Tool, spec: ToolSpec) -> None:
    tool.description = spec.description
    tool.parameters = dict(spec.parameters)
    tool.category = spec.category
    tool.tags = list(spec.tags)
    tool.family = spec.family
    tool.source = spec.source
    tool.extra = dict(spec.extra)
    tool.content_hash = spec.content_hash()


_SPEC_FIELDS = ["description", "parameters", "category", "tags", "family", "source", "extra", "content_hash"]


def _name_functions(tools: list[Tool]) -> None:
    """Give new tools their function names (catalog/naming.py), reading in one query which
    of the names they could take are already held. Two imports racing for one name meet
    the unique index: the later transaction fails and is retried or answered 409."""
    by_owner: dict[int | None, list[Tool]] = {}
    for tool in tools:
        by_owner.setdefault(tool.tenant_id, []).append(tool)
    for tenant_id, owned in by_owner.items():
        # a tenant's tool may repeat another tenant's namespace/name: its tenant salts the hash
        wanted = [(t.key if tenant_id is None else f"{tenant_id}@{t.key}", t.name) for t in owned]
        tried = {c for key, name in wanted for c in itertools.islice(naming.candidates(key, name), 2)}
        held = Tool.objects.filter(function_name__in=tried)
        if tenant_id is not None:
            # only the names this tenant's keys see: another tenant's must not shape this name
            held = held.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id))
        taken = set(held.values_list("function_name", flat=True))
        for tool, function_name in zip(owned, naming.assign(wanted, taken)):
            tool.function_name = function_name


def tool_import(
    *,
    records: Iterable[ToolSpec | Rejection],
    namespace: str = "default",
    schedule_rebuild: bool = True,
    tenant_id: int | None = None,
) -> ImportReport:
    """Insert new tools and update changed ones; a re-import never duplicates.

    Reads existing tools of the namespace in one query and writes in bulk, so importing
    thousands of tools costs a handful of statements, not one per tool. `tenant_id` None
    imports shared tools (an operator's command), else the tenant's own.
    """
    report = ImportReport()
    specs: dict[str, ToolSpec] = {}
    for record in records:
        if isinstance(record, Rejection):
            report.rejected.append(record)
        else:
            specs[record.name] = record  # a name repeated in one file: the last one wins
    with transaction.atomic():
        owner = Q(tenant__isnull=True) if tenant_id is None else Q(tenant_id=tenant_id)
        existing = {t.name: t for t in Tool.objects.filter(owner, namespace=namespace, name__in=list(specs))}
        to_create, to_update = [], []
        for name, spec in specs.items():
            tool = existing.get(name)
            if tool is None:
                tool = Tool(tenant_id=tenant_id, namespace=namespace, name=name)
                _apply(tool, spec)
                to_create.append(tool)
            elif tool.content_hash != spec.content_hash():
                _apply(tool, spec)
                to_update.append(tool)
            else:
                report.unchanged += 1
        _name_functions(to_create)
        Tool.objects.bulk_create(to_create, batch_size=500)
        Tool.objects.bulk_update(to_update, [*_SPEC_FIELDS, "updated_at"], batch_size=500)
        report.created, report.updated = len(to_create), len(to_update)
        if schedule_rebuild and (to_create or to_update):
            _schedule_rebuild()
    return report


def tool_create(*, namespace: str, spec: ToolSpec, enabled: bool = True, tenant_id: int | None = None) -> Tool:
    """A tenant's tool (`tenant_id`) or a shared one (None); 409 if the name is taken.

    A tenant's tool may take a name another tenant uses (refusing would tell that the other
    tool exists), never the name of a tool the tenant already sees: its own or a shared one.
    A shared tool is refused any name a tool has in its namespace (it would appear twice to
    that tenant); only admins create shared tools, and they see every tool anyway. Two
    requests racing past the check meet the unique index, and the loser is answered 409 like
    the sequential case; a race for the same function name (two names that clean to one) is
    tried again."""
    for _attempt in range(3):
        taken = Tool.objects.filter(namespace=namespace, name=spec.name)
        if tenant_id is not None:
            taken = taken.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id))
        if taken.exists():
            break
        try:
            with transaction.atomic():
                tool = Tool(tenant_id=tenant_id, namespace=namespace, name=spec.name, enabled=enabled)
                _apply(tool, spec)
                _name_functions([tool])
                tool.save()
                _schedule_rebuild()
            return tool
        except IntegrityError:
            continue
    raise Conflict(f"A tool named {spec.name!r} already exists in namespace {namespace!r}.")


_EDITABLE = ("description", "parameters", "category", "tags", "family", "source", "extra")


def tool_update(*, tool: Tool, changes: dict[str, Any]) -> Tool:
    """Apply a partial update (validated like an import) to one tool; the name stays."""
    with transaction.atomic():
        tool = Tool.objects.select_for_update().get(pk=tool.pk)
        fields = {name: getattr(tool, name) for name in _EDITABLE}
        fields.update({k: v for k, v in changes.items() if k in _EDITABLE})
        spec = make_spec(name=tool.name, **fields)
        updated = []
        if spec.content_hash() != tool.content_hash:
            _apply(tool, spec)
            updated += _SPEC_FIELDS
        if "enabled" in changes and bool(changes["enabled"]) != tool.enabled:
            tool.enabled = bool(changes["enabled"])
            updated.append("enabled")
        if updated:
            tool.save(update_fields=[*updated, "updated_at"])
            _schedule_rebuild()
    return tool


def tool_set_enabled(*, tool_ids: Iterable[int], enabled: bool) -> int:
    """Enable or disable tools in bulk; returns how many changed."""
    with transaction.atomic():
        count = Tool.objects.filter(pk__in=list(tool_ids)).exclude(enabled=enabled).update(enabled=enabled)
        if count:
            _schedule_rebuild()
    return count
