from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Tool
from tests.conftest import DATASETS, small_catalog_jsonl


def _import(path: Path, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_tools", str(path), "--no-rebuild", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_reimporting_updates_and_never_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "tools.jsonl"
    path.write_text(small_catalog_jsonl())
    out, _ = _import(path)
    assert "created 12, updated 0, unchanged 0, rejected 0" in out
    out, _ = _import(path)
    assert "created 0, updated 0, unchanged 12, rejected 0" in out
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["description"] = "A changed description."
    path.write_text("\n".join([json.dumps(first), *lines[1:]]))
    out, _ = _import(path)
    assert "created 0, updated 1, unchanged 11" in out
    assert Tool.objects.count() == 12
    assert Tool.objects.get(name=first["id"]).description == "A changed description."


@pytest.mark.django_db
def test_bad_lines_are_reported_and_good_ones_imported(tmp_path: Path) -> None:
    path = tmp_path / "tools.jsonl"
    path.write_text('{"id": "ok_tool"}\n{"id": 5}\n')
    out, err = _import(path)
    assert "created 1" in out and "rejected 1" in out
    assert "line 2: name must be a string" in err
    assert list(Tool.objects.values_list("name", flat=True)) == ["ok_tool"]


@pytest.mark.django_db
def test_namespaces_keep_same_named_tools_apart(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([{"type": "function", "function": {"name": "search"}}]))
    _import(path, "--namespace", "a")
    _import(path, "--namespace", "b")
    assert sorted(Tool.objects.values_list("namespace", flat=True)) == ["a", "b"]


@pytest.mark.django_db
def test_a_missing_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        _import(tmp_path / "nope.json")


@pytest.mark.django_db
@pytest.mark.skipif(not (DATASETS / "toolbench" / "tools.jsonl").exists(), reason="shared datasets not present")
def test_importing_toolbench_twice_leaves_2479_tools() -> None:
    path = DATASETS / "toolbench" / "tools.jsonl"
    out, _ = _import(path)
    assert "created 2479" in out and "rejected 0" in out
    out, _ = _import(path)
    assert "created 0, updated 0, unchanged 2479" in out
    assert Tool.objects.count() == 2479
