"""The package's imports go one way: from the command-line doors down to the networks, never back up.

Every `gan_lightning` import of every module counts, at the top or inside a function, and importing `a.b.c` also
imports the packages `a.b` (their `__init__`). The root package `gan_lightning` is left out: Python imports it
before any of its modules, and it imports nothing until `load_generator` is called.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gan_lightning"

# lowest first; a module may import its own layer and those below. A name stands for a module or a whole package.
LAYERS = [
    ("foundations", ["errors", "checks", "files", "hardware", "version", "options"]),
    ("data and networks", ["data", "networks"]),
    ("metrics", ["metrics"]),
    ("training logic", ["models"]),
    ("trained generators", ["checkpoint", "pretrained", "sampling"]),
    ("configs and run bookkeeping", ["config", "tool_config", "callbacks", "sweeps"]),
    ("command-line doors", ["train", "evaluate", "generate", "export", "demo", "package_pretrained", "benchmarks"]),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path], with_packages: bool = True) -> set[str]:
    """The package's modules that the file at `path` imports (relative to the package); `with_packages`: with the
    packages above them, whose `__init__` runs first."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "gan_lightning":
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.split(".")[0] == "gan_lightning"]
        else:
            continue
        for name in names:
            module = name.removeprefix("gan_lightning").removeprefix(".")
            while module and module not in known:  # `from pkg import name`: a module, or a name in pkg
                module = module.rpartition(".")[0]
            parts = module.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} if with_packages else {module}
    return found - {""}


def layer_of(module: str) -> int:
    best = None  # the most specific name that covers the module
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    assert best is not None, f"gan_lightning.{module} is in no layer of tests/test_layers.py: add it to one"
    return best[0]


GRAPH = {module: imports(path, modules()) - {module} for module, path in modules().items() if module}
# the imports as written (a package's `__init__` importing its modules, which Python runs first, is no cycle)
WRITTEN = {module: imports(path, modules(), with_packages=False) - {module} for module, path in modules().items() if module}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module):
    own = layer_of(module)
    upward = sorted(target for target in GRAPH[module] if layer_of(target) > own)
    assert not upward, (f"gan_lightning.{module} ({LAYERS[own][0]}) imports {', '.join(upward)} from a higher layer; "
                        "move the shared code down instead")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (its modules in order, the first repeated at the end), or None."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module))), None)


def test_there_is_no_import_cycle():
    cycle = find_cycle(WRITTEN)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check finds one


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """A module of the networks importing the training logic is found, also when the import hides in a function."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from gan_lightning.models.base import GAN\n    return GAN\n")
    found = imports(module, modules())
    assert {"models", "models.base"} <= found and max(map(layer_of, found)) > layer_of("networks.mlp")
