"""Nothing in tf_t2i imports upward: checked on the source with `ast`, no import executed.

Layers, lowest first: the building blocks (config, errors, data, models, losses, gan,
checkpoints, image_grid), runs (the run folder), export, evaluation (metrics, figures, plots),
training, the CLIs. A module may import its own layer and those below. A module not listed sits
at the highest layer it imports from (e.g. a helper used by training that reads runs), so new
modules need no entry here unless they should sit higher.
"""
import ast
import os

import pytest

PACKAGE = "tf_t2i"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
LAYERS = {
    "tf_t2i": 0, "tf_t2i.errors": 0, "tf_t2i.config": 0, "tf_t2i.data": 0, "tf_t2i.models": 0,
    "tf_t2i.losses": 0, "tf_t2i.gan": 0, "tf_t2i.checkpoints": 0, "tf_t2i.image_grid": 0,
    "tf_t2i.runs": 1,
    "tf_t2i.export": 2,
    "tf_t2i.evaluation": 3,
    "tf_t2i.training": 4,
    "tf_t2i.cli": 5,
}
NAMES = {0: "building blocks", 1: "runs", 2: "export", 3: "evaluation", 4: "training", 5: "cli"}


def _modules() -> dict[str, set[str]]:
    """{module: the tf_t2i modules it imports (anywhere in the file, also inside functions)}."""
    modules = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            imported = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
                    # `from tf_t2i.evaluation import model_source` imports a module too.
                    imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            modules[module] = {m for m in imported if m.split(".")[0] == PACKAGE}
    return modules


def _listed_layer(module: str):
    # The package itself (tf_t2i/__init__.py) is listed; its prefix covers nothing.
    prefixes = [p for p in LAYERS
                if module == p or (p != PACKAGE and module.startswith(p + "."))]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


def _layers(modules: dict[str, set[str]]) -> dict[str, int]:
    """Listed layers, and for unlisted modules the highest layer they import (to a fixpoint)."""
    layers = {m: _listed_layer(m) for m in modules}
    unlisted = [m for m, layer in layers.items() if layer is None]
    layers.update({m: 0 for m in unlisted})
    for _ in range(len(unlisted)):
        for m in unlisted:
            layers[m] = max([0] + [layers[i] for i in modules[m] if i in layers])
    return layers


def upward_imports(modules: dict[str, set[str]]) -> list[str]:
    """One line per import of a higher layer."""
    layers = _layers(modules)
    upward = []
    for module, imported in sorted(modules.items()):
        for target in sorted(imported):
            target_layer = layers.get(target, _listed_layer(target))
            if target_layer is not None and target_layer > layers[module]:
                upward.append(f"{module} ({NAMES[layers[module]]}) imports {target} "
                              f"({NAMES[target_layer]})")
    return upward


def test_the_parser_sees_the_known_imports():
    modules = _modules()
    assert "tf_t2i.runs" in modules["tf_t2i.training"]
    assert "tf_t2i.evaluation.model_source" in modules["tf_t2i.cli.evaluate"]
    # Imports inside functions count: model_source reads runs and export lazily.
    assert {"tf_t2i.runs", "tf_t2i.export"} <= modules["tf_t2i.evaluation.model_source"]


def test_no_module_imports_from_a_higher_layer():
    assert not upward_imports(_modules()), "\n".join(upward_imports(_modules()))


def test_an_upward_import_is_caught_also_through_an_unlisted_module():
    modules = {"tf_t2i.data.reader": {"tf_t2i.helper"}, "tf_t2i.helper": {"tf_t2i.training"},
               "tf_t2i.training": {"tf_t2i.data.reader"}, "tf_t2i.evaluation.m": {"tf_t2i.cli"},
               "tf_t2i.cli": set()}
    assert upward_imports(modules) == [
        "tf_t2i.data.reader (building blocks) imports tf_t2i.helper (training)",
        "tf_t2i.evaluation.m (evaluation) imports tf_t2i.cli (cli)"]


@pytest.mark.parametrize("module", ["tf_t2i.evaluation.quality_metrics",
                                    "tf_t2i.evaluation.training_evaluator",
                                    "tf_t2i.evaluation.curves"])
def test_metrics_sit_below_training_and_the_clis(module):
    assert _layers(_modules())[module] == LAYERS["tf_t2i.evaluation"]
