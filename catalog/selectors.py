from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from operator import or_

from django.db.models import Q, QuerySet

from access.models import Scope
from access.policy import Caller, Forbidden, ToolPolicy, split_tool_key
from catalog.models import Tool
from toolrec_site.errors import NotFound


def _keys_q(tool_keys: Iterable[str]) -> Q | None:
    parts = [Q(namespace=ns, name=name) for ns, name in filter(None, map(split_tool_key, tool_keys))]
    return reduce(or_, parts) if parts else None


def tool_visible_q(policy: ToolPolicy) -> Q:
    """The tools a key sees: shared or its tenant's, within its tool policy."""
    visible = Q(tenant__isnull=True) | Q(tenant_id=policy.tenant_id)
    if policy.restricts:
        allowed = Q(namespace__in=sorted(policy.allowed_namespaces))
        tools = _keys_q(policy.allowed_tools)
        visible &= allowed | tools if tools is not None else allowed
    denied = _keys_q(policy.denied_tools)
    if denied is not None:
        visible &= ~denied
    return visible


def tools_visible(policy: ToolPolicy | None) -> QuerySet[Tool]:
    """Every tool for None (staff), else the ones the key's tenant and policy let it see."""
    return Tool.objects.all() if policy is None else Tool.objects.filter(tool_visible_q(policy))


def tool_get_visible(*, policy: ToolPolicy | None, tool_id: int) -> Tool:
    """The tool, if the caller may see it. A tool it may not see is answered exactly like a
    tool that does not exist (same status, same message)."""
    tool = tools_visible(policy).filter(pk=tool_id).first()
    if tool is None:
        raise NotFound("Not found.")
    return tool


def tool_list(
    *,
    policy: ToolPolicy | None = None,
    namespace: str | None = None,
    category: str | None = None,
    enabled: bool | None = None,
    search: str | None = None,
) -> QuerySet[Tool]:
    tools = tools_visible(policy)
    if namespace:
        tools = tools.filter(namespace=namespace)
    if category:
        tools = tools.filter(category=category)
    if enabled is not None:
        tools = tools.filter(enabled=enabled)
    if search:
        tools = tools.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return tools.order_by("namespace", "name", "pk")


def tool_create_owner(*, caller: Caller, shared: bool, namespace: str) -> int | None:
    """Whose tool a create by `caller` makes: its tenant's (the id), or shared (None, admins
    only). Raises Forbidden when the caller may not create it."""
    caller.require(Scope.CATALOG_WRITE)
    if shared or caller.api_key is None:
        if not caller.is_admin:
            raise Forbidden("Only a key with the 'admin' scope creates shared tools.")
        return None
    if caller.policy is not None and not caller.policy.may_write_namespace(namespace):
        raise Forbidden(f"This API key may not write tools in namespace {namespace!r}.")
    return caller.tenant_id


def tool_get_writable(*, caller: Caller, tool_id: int) -> Tool:
    """A tool the caller may change: one it sees (else NotFound, as for an unknown tool), its
    tenant's own, or a shared one with the admin scope (else Forbidden)."""
    tool = tool_get_visible(policy=caller.policy, tool_id=tool_id)
    caller.require(Scope.CATALOG_WRITE)
    if tool.tenant_id is None and not caller.is_admin:
        raise Forbidden("Shared tools are changed by admins only.")
    return tool
