"""What a key may see and do, in one place the REST API, the MCP face and the services share.

Visibility of a tool to a key: the tool is shared or the key's tenant's, and it passes the
key's tool policy (in an allowed namespace or an allowed tool when either list is set, and
not denied). The catalog turns this into a query (`catalog.selectors.tool_visible_q`), the
serving stage into a mask over the snapshot's rows (`recommender.serving.visibility`), both
applied before anything is read or retrieved, so that a tool a key may not see looks
exactly like a tool that does not exist."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import status

from access.models import ApiKey, Scope
from toolrec_site.errors import ToolrecError


class Forbidden(ToolrecError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


def scope_require(api_key: ApiKey, scope: Scope | str) -> None:
    """Raise Forbidden unless the key holds the scope (admin holds every scope)."""
    if api_key.has_scope(str(scope)) or api_key.has_scope(Scope.ADMIN.value):
        return
    raise Forbidden(f"This API key lacks the {str(scope)!r} scope.")


def split_tool_key(tool_key: str) -> tuple[str, str] | None:
    """("namespace", "name") of a "namespace/name" key; None if it is not one."""
    namespace, sep, name = tool_key.partition("/")
    return (namespace, name) if sep and namespace and name else None


@dataclass(frozen=True)
class ToolPolicy:
    """The tool policy of one key: tool keys are "namespace/name"."""

    tenant_id: int
    allowed_namespaces: frozenset[str] = frozenset()
    allowed_tools: frozenset[str] = frozenset()
    denied_tools: frozenset[str] = frozenset()
    pinned_tools: tuple[str, ...] = ()

    @classmethod
    def of(cls, api_key: ApiKey) -> ToolPolicy:
        return cls(
            tenant_id=api_key.tenant_id,
            allowed_namespaces=frozenset(api_key.allowed_namespaces or ()),
            allowed_tools=frozenset(api_key.allowed_tools or ()),
            denied_tools=frozenset(api_key.denied_tools or ()),
            pinned_tools=tuple(api_key.pinned_tools or ()),
        )

    @property
    def restricts(self) -> bool:
        """Whether the allow lists narrow the tenant's tools (denials aside)."""
        return bool(self.allowed_namespaces or self.allowed_tools)

    def allows(self, tool_key: str) -> bool:
        """The policy alone (the tenant is checked apart): for one tool's key."""
        if tool_key in self.denied_tools:
            return False
        if not self.restricts:
            return True
        return tool_key in self.allowed_tools or tool_key.partition("/")[0] in self.allowed_namespaces

    def may_write_namespace(self, namespace: str) -> bool:
        """A key limited to some namespaces writes only there (it could not see the rest)."""
        return not self.restricts or namespace in self.allowed_namespaces


@dataclass(frozen=True)
class Caller:
    """Who calls the catalog: a key (its tenant and policy) or a signed-in staff user, who
    sees every tool and writes shared ones."""

    api_key: ApiKey | None
    policy: ToolPolicy | None  # None: every tool (staff)

    @classmethod
    def of_key(cls, api_key: ApiKey) -> Caller:
        return cls(api_key, ToolPolicy.of(api_key))

    @property
    def tenant_id(self) -> int | None:
        return self.policy.tenant_id if self.policy is not None else None

    @property
    def is_admin(self) -> bool:
        return self.api_key is None or self.api_key.has_scope(Scope.ADMIN.value)

    def require(self, scope: Scope | str) -> None:
        if self.api_key is not None:
            scope_require(self.api_key, scope)
