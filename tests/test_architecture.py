"""The package's shape: layers import downward only, no import circle, no private name crosses.

The checker reads the source with `ast` (nothing is imported), so it sees
every import, including those inside functions and under ``TYPE_CHECKING``.
It is tested on small packages written to ``tmp_path`` first, so a rule that
stopped catching anything would fail here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "servio_twilio"
SOURCE = Path(__file__).resolve().parent.parent / "src" / PACKAGE

# What each part of the package may import of ours. The faces (the package
# itself and servio_twilio.firestore) re-export; the kit may use anything.
PRODUCT_LAYERS = {
    "domain": {"domain"},
    "storage": {"domain", "storage"},
    "sending": {"domain", "storage", "sending"},
    "webhooks": {"domain", "storage", "webhooks"},
    "console": {"domain", "storage", "sending", "console"},
    "__init__": {"domain", "storage", "sending", "webhooks"},
    "firestore": {"storage"},
}
KIT = {"testing", "demo", "__main__", "reconcile_command"}


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(tree: ast.AST, modules: dict[str, Path]) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for each import of ours in ``tree``."""
    package = next(iter(modules)).split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] != package:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    yield submodule, "", node.lineno
                else:
                    yield node.module, alias.name, node.lineno


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph``, as the modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def problems(root: Path) -> list[str]:
    """Every breach of the package's shape under ``root``, as readable lines."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        imported_modules = {}
        for target, name, line in _imports(tree, modules):
            where = f"{path.relative_to(root.parent)}:{line}"
            if target != module and target != root.name:
                graph[module].add(target)
            if name.startswith("_") and not name.startswith("__"):
                found.append(f"{where}: imports the private name {name} of {target}")
            if not name:
                imported_modules[target.rsplit(".", 1)[-1]] = target
            layer, target_layer = _layer(module), _layer(target)
            if layer in PRODUCT_LAYERS and target != root.name:
                if target_layer in KIT:
                    found.append(f"{where}: the product ({module}) imports the kit ({target})")
                elif target_layer not in PRODUCT_LAYERS[layer]:
                    found.append(f"{where}: {layer} may not import {target_layer} ({target})")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported_modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                target = imported_modules[node.value.id]
                where = f"{path.relative_to(root.parent)}:{node.lineno}"
                found.append(f"{where}: uses the private name {node.attr} of {target}")
    circle = _cycle(graph)
    if circle is not None:
        found.append("import circle: " + " -> ".join(circle))
    return found


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


class TestTheChecker:
    def test_a_clean_package_passes(self, tmp_path: Path) -> None:
        """Downward imports of public names are fine."""
        root = _package(
            tmp_path,
            {
                "domain/__init__.py": "",
                "domain/models.py": "X = 1\n",
                "sending/__init__.py": "",
                "sending/client.py": "from pkg.domain.models import X\n",
            },
        )
        assert problems(root) == []

    def test_an_import_circle_is_found(self, tmp_path: Path) -> None:
        """a -> b -> a is reported, even when one side imports inside a function."""
        root = _package(
            tmp_path,
            {
                "domain/__init__.py": "",
                "domain/a.py": "from pkg.domain.b import B\nA = 1\n",
                "domain/b.py": "def f():\n    from pkg.domain.a import A\n    return A\nB = 2\n",
            },
        )
        assert problems(root) == ["import circle: pkg.domain.a -> pkg.domain.b -> pkg.domain.a"]

    def test_a_private_name_crossing_is_found(self, tmp_path: Path) -> None:
        """Both ``from m import _x`` and ``m._x`` on an imported module are reported."""
        root = _package(
            tmp_path,
            {
                "domain/__init__.py": "",
                "domain/a.py": "_X = 1\n",
                "domain/b.py": "from pkg.domain.a import _X\n",
                "domain/c.py": "from pkg.domain import a\nY = a._X\n",
            },
        )
        found = problems(root)
        assert any("b.py:1: imports the private name _X" in line for line in found)
        assert any("c.py:2: uses the private name _X" in line for line in found)

    @pytest.mark.parametrize(
        ("importer", "imported"),
        [
            ("domain/a.py", "pkg.storage.s"),
            ("storage/a.py", "pkg.sending.s"),
            ("sending/a.py", "pkg.webhooks.s"),
            ("webhooks/a.py", "pkg.sending.s"),
            ("sending/a.py", "pkg.testing.s"),
        ],
    )
    def test_an_upward_or_sideways_import_is_found(
        self, tmp_path: Path, importer: str, imported: str
    ) -> None:
        """Imports go down the layers; sending and receiving never meet; the kit stays out."""
        files = {f"{layer}/__init__.py": "" for layer in ("domain", "storage", "sending")}
        files |= {"webhooks/__init__.py": "", "testing/__init__.py": ""}
        files |= {f"{layer}/s.py": "S = 1\n" for layer in ("storage", "sending", "webhooks")}
        files |= {"testing/s.py": "S = 1\n", importer: f"from {imported} import S\n"}
        found = problems(_package(tmp_path, files))
        assert len(found) == 1, found
        assert "may not import" in found[0] or "imports the kit" in found[0]


class TestThePackage:
    def test_the_layers_are_folders(self) -> None:
        """Every product module lives in a layer folder, beside the two faces and the kit."""
        top = {path.name for path in SOURCE.iterdir() if not path.name.startswith(".")}
        top.discard("__pycache__")
        assert top == {
            "__init__.py",
            "__main__.py",
            "console",
            "demo",
            "reconcile_command.py",
            "domain",
            "firestore.py",
            "py.typed",
            "sending",
            "storage",
            "testing",
            "webhooks",
        }

    def test_the_package_keeps_its_shape(self) -> None:
        """No import circle, no private name crossing a module, imports down the layers only."""
        assert problems(SOURCE) == []

    def test_the_architecture_page_maps_every_module(self) -> None:
        """docs/architecture.md names every module of the tree, so the map stays true."""
        page = (SOURCE.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
        for path in SOURCE.rglob("*.py"):
            if path.name != "__init__.py" or path.parent == SOURCE:
                assert path.name in page, path.relative_to(SOURCE)
