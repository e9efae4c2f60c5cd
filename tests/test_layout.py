"""The package's layout rules (docs/design.md, "What each module may import").

- Every module's opening docstring has a ``May use:`` paragraph naming what it may
  import: third-party packages by name, minirnn's modules as ``minirnn.x`` in
  backquotes (a package's name covers its modules; `minirnn` alone, the public
  names), and "its own modules" for the other modules of its package. Each import in the module, at any depth, must be
  one the line allows, so that the line stays true.
- No import cycles among minirnn's modules, counting the imports made when a module
  is imported (module level), and no module imports names from a package above it
  (``from .. import LSTM`` runs that package's ``__init__`` first).
"""

import ast
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "minirnn")
STANDARD = set(getattr(sys, "stdlib_module_names", ())) | {"__future__"}


def modules():
    """{dotted name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path[:-3], ROOT).replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def _absolute(module, path, node):
    """The dotted module an ImportFrom names (relative ones resolved)."""
    if not node.level:
        return node.module
    parts = module.split(".")
    if not path.endswith("__init__.py"):
        parts = parts[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports(module, top_level_only=False):
    """[(target, line, names)]: each import of ``module``, its target module resolved
    (for ``from x import y`` where y is a module of the package, the target is x.y)."""
    path = MODULES[module]
    tree = ast.parse(open(path, encoding="utf-8").read())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, node.lineno, None) if sub in MODULES
                             else (base, node.lineno, alias.name))
    return found


def package_of(module):
    """The package a module belongs to (a package's __init__: the package itself)."""
    return module if MODULES[module].endswith("__init__.py") else module.rsplit(".", 1)[0]


def allowed(module):
    """The ``May use:`` line of a module's docstring: (the lowercase words in it, the
    ``minirnn.x`` modules it names, whether it allows the module's own package's other
    modules: "its own modules"), or None without one."""
    doc = ast.get_docstring(ast.parse(open(MODULES[module], encoding="utf-8").read())) or ""
    match = re.search(r"May (?:use|import):(.*?)(?:\n\s*\n|$)", doc, re.S)  # its paragraph
    if not match:
        return None
    text = " ".join(match.group(1).split())
    own = set(re.findall(r"`(minirnn(?:\.\w+)*)`", text))
    words = set(re.findall(r"\b[a-z][\w-]*\b", re.sub(r"`minirnn(?:\.\w+)*`", "", text)))
    return words, own, "own modules" in text


def _allows(rule, module, target):
    words, own, siblings = rule
    if target.split(".")[0] != "minirnn":
        top = target.split(".")[0]
        return top in STANDARD or top in words or top.replace("_", "-") in words
    if target == module or target.startswith(module + "."):
        return True
    if any(target == name or (name != "minirnn" and target.startswith(name + "."))
           for name in own):  # `minirnn`: the package's public names only
        return True
    return siblings and target.startswith(package_of(module) + ".")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_says_what_it_may_use_and_keeps_to_it(module):
    rule = allowed(module)
    assert rule is not None, f"{MODULES[module]}: the docstring needs a 'May use:' line"
    for target, line, _ in imports(module):
        assert _allows(rule, module, target), \
            f"{MODULES[module]}:{line} imports {target}, which its 'May use:' line does not name"


def test_no_import_cycles_and_no_names_from_a_package_above():
    graph = {}
    for module in MODULES:
        edges = set()
        for target, line, name in imports(module, top_level_only=True):
            if not target.startswith("minirnn"):
                continue
            if name is not None and target in MODULES and module.startswith(target + ".") \
                    and not name.startswith("_"):
                pytest.fail(f"{MODULES[module]}:{line}: `from {target} import {name}` runs "
                            f"{target}'s __init__ from inside it; import from the module "
                            "that defines it")
            if target in MODULES and target != module and not target.startswith(module + "."):
                edges.add(target)
        graph[module] = edges
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
