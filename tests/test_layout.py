"""The package's architecture, checked: modules import only downward through the
layers of the README's Layout section, with no cycle (function-level imports count
too) and no import of another module's private names; no module grows past the
size one person can read."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "clustore_lite"
MAX_LINES = 600

# Lowest first; a module may import its own layer and the layers below it.
LAYERS = [
    ["errors", "catalog"],
    ["values", "jsonb", "patterns", "arrow.ipc_size", "arrow.checksum", "arrow.codec",
     "arrow.conform", "arrow.delimited", "arrow.files"],
    ["db.event_sql", "db.recipients_sql", "db.migrations", "db.statistics", "db.sqlite_errors",
     "db.sql_functions", "db.opening", "db.session", "db.file_locks", "db.checkpoints", "db.writeback",
     "db.connection", "db.staging", "db.maintenance", "db.chunk_sums",
     "db.vacuum"],
    ["filter_operators", "aggregation", "query"],
    ["access.destinations", "access.roles", "access.audience"],
    ["model.update_operators", "model.base", "model.entities", "model.work", "model.dataframes", "model.eventlog"],
    ["access.rules"],
    ["store"],
    ["access.http", "demo", "outbound", "delivery", "mirror.pg_schema", "mirror.renames",
     "mirror.postgres", "mirror.hasura"],
    ["graphql.aggregate_sdl", "graphql.sdl", "graphql.error_paths", "graphql.atomic",
     "graphql.errors", "graphql.limits", "graphql.documents", "graphql.select", "graphql.live",
     "graphql.stream", "graphql.mutations", "graphql.schema",
     "graphql.fastpath"],
    ["server.errors", "server.graphql_http", "server.guard", "server.bodies",
     "server.http_protocol", "server.ide", "server.subscriptions", "server.websockets",
     "server.arrow", "server.app"],
    ["cli_data", "cli_admin", "cli", "__main__", "__init__"],
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1] + ("__init__",)
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]):
    """(imported module, imported name or None, line) for every import of the package's
    own modules in `path`, wherever it stands (module level or inside a function)."""
    package = name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1] if node.level > 1 else package
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                as_module = f"{target}.{alias.name}".lstrip(".")
                if as_module in known or f"{as_module}.__init__" in known:
                    yield as_module, None, node.lineno
                else:
                    yield target or "__init__", alias.name, node.lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            absolute = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for module in filter(None, absolute):
                if module == "clustore_lite" or module.startswith("clustore_lite."):
                    yield module.removeprefix("clustore_lite").lstrip(".") or "__init__", None, node.lineno


def edges():
    known = set(modules())
    for name, path in modules().items():
        for target, imported, line in imports(name, path, known):
            target = target if target in known else f"{target}.__init__"
            yield name, target, imported, f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_every_module_has_a_layer():
    missing = [m for m in modules() if m not in RANK and not m.endswith("__init__")]
    assert not missing, f"add these modules to LAYERS (and the README's Layout): {missing}"


def test_modules_import_only_downward():
    upward = [f"{where}: {source} imports {target}" for source, target, _, where in edges()
              if not target.endswith("__init__") and RANK[target] > RANK.get(source, len(LAYERS))]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in edges():
        if source != "__init__" and target != "__init__":
            graph.setdefault(source, set()).add(target)
    state: dict[str, str] = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_module_imports_another_modules_private_names():
    private = [f"{where}: {source} imports {target}.{imported}"
               for source, target, imported, where in edges()
               if imported and imported.startswith("_") and not imported.startswith("__")]
    assert not private, "\n".join(private)


def test_no_module_is_too_long_to_read():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    """The checks above can fail: a tiny package with both faults is caught."""
    pkg = tmp_path / "clustore_lite"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "errors.py").write_text("from .catalog import _hidden\n")
    (pkg / "catalog.py").write_text("_hidden = 1\ndef f():\n    from .sub import thing\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "thing.py").write_text("from ..errors import x\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    found = list(edges())
    assert ("errors", "catalog", "_hidden", "clustore_lite/errors.py:1") in found
    assert ("catalog", "sub.thing", None, "clustore_lite/catalog.py:3") in found
    try:
        test_no_import_cycle()
    except AssertionError as error:
        assert "catalog -> sub.thing -> errors -> catalog" in str(error)
    else:
        raise AssertionError("the cycle was not seen")
