"""House rules the code base keeps, checked by reading its source (fast, no TensorFlow).

A private name (`_helper`) belongs to its module: when a second module needs it, it becomes
public there. Nothing in dnnlab/ imports another dnnlab module's private name, or reaches one
through a module it imported (`compare._default_metric`).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dnnlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def absolute(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The module an `ImportFrom` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def private_uses(path: Path) -> list[str]:
    """`file:line: what` for each private name of another dnnlab module used in `path`."""
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    modules: dict[str, str] = {}  # local name -> the dnnlab module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dnnlab":
                    if alias.asname:
                        modules[alias.asname] = alias.name
                    if any(is_private(part) for part in alias.name.split(".")):
                        found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node, module, path)
            if source.split(".")[0] != "dnnlab" or source == module:
                continue
            for alias in node.names:
                if is_private(alias.name):
                    found.append((node.lineno, f"from {source} import {alias.name}"))
                elif is_module(f"{source}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and modules[node.value.id] != module
            and is_private(node.attr)
        ):
            found.append((node.lineno, f"{modules[node.value.id]}.{node.attr}"))
    return [f"{path}:{line}: {what}" for line, what in sorted(found)]


def test_no_module_uses_another_modules_private_names():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 50  # the scan found the package
    found = [use for path in sources for use in private_uses(path)]
    assert found == [], "private names used outside their module:\n" + "\n".join(found)


def test_the_scan_sees_both_ways_in(tmp_path, monkeypatch):
    """The checker itself: a private import and a private attribute of an imported module."""
    package = tmp_path / "dnnlab"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "sub/__init__.py", "sub/helpers.py"):
        (package / name).write_text("")
    offender = package / "sub" / "user.py"
    offender.write_text(
        "from dnnlab.sub.helpers import _hidden, public\n"
        "from dnnlab.sub import helpers\n"
        "from . import helpers as h\n"
        "helpers._other()\nh._third\nhelpers.fine()\n"
    )
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert [use.split(": ", 1)[1] for use in private_uses(offender)] == [
        "from dnnlab.sub.helpers import _hidden",
        "dnnlab.sub.helpers._other",
        "dnnlab.sub.helpers._third",
    ]
