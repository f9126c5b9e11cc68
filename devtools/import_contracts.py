"""Two import-linter contract types the built-in ones do not cover (used by `make lint`
through `[tool.importlinter]` in pyproject.toml).

* ``acyclic_modules``: no import cycle between any two modules of the given packages,
  imports inside functions included (grimp reads every import statement). Built-in
  ``acyclic_siblings`` only compares siblings of one parent; a cycle through two packages
  would need a layers contract naming every pair.
* ``allowed_imports``: the source modules import only the standard library, the listed
  external packages and the listed internal modules. An allow-list, so the pure engine
  cannot start importing a new framework unnoticed (a forbidden list names only what
  someone thought of).
"""

from __future__ import annotations

import sys
from typing import Any, cast

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, recursion depth is not)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            if children:
                child = children.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        modules: set[str] = set()
        for package in cast(list[str], self.packages):
            modules |= {package} | graph.find_descendants(package)
        edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
        cycles = _strongly_connected(modules, edges)
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error("These modules import each other in a cycle: " + ", ".join(cycle))
            output.new_line()


class AllowedImportsContract(Contract):
    type_name = "allowed_imports"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_external = fields.ListField(subfield=fields.StringField())
    allowed_internal = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        allowed = set(cast(list[str], self.allowed_external)) | set(sys.stdlib_module_names)
        internal = cast(list[str], self.allowed_internal)
        bad: list[dict[str, Any]] = []
        for source in cast(list[str], self.source_modules):
            for module in sorted({source} | graph.find_descendants(source)):
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    top = imported.split(".")[0]
                    if top in allowed or any(imported == m or imported.startswith(m + ".") for m in internal):
                        continue
                    bad.append({"importer": module, "imported": imported})
        return ContractCheck(kept=not bad, metadata={"bad": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["bad"]:
            output.print_error(f"{item['importer']} may not import {item['imported']}")
        output.new_line()
