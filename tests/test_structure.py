"""The codebase's layering rules (team brief), enforced by walking every module's syntax tree."""

from __future__ import annotations

import ast
import gc
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from inproc import invoke

PACKAGE = Path(__file__).resolve().parent.parent / "get3w_cli"

# Imports point down: a unit may import only units of a strictly lower rank (or itself).
# webhooks/, http and sandbox/ share a rank so that none of them can import another.
RANKS = {
    "__init__": 0, "errors": 0, "constants": 0, "redaction": 0, "timeouts": 0, "names": 0,
    "records": 1,
    "payloads": 2, "config": 2, "journal": 2, "retry": 2, "models_cache": 2,
    "http": 3, "webhooks": 3, "sandbox": 3,
    "providers": 4, "downloads": 4,
    "waiting": 5, "callbacks": 5,
    "batch": 6, "tasks": 6,
    "cli": 7,
    "__main__": 8,
}
# Third-party libraries and the only places that may import them.
OWNERS = {
    "typer": ("cli/",),
    "rich": ("cli/",),
    "httpx": ("http/",),
    "pyngrok": ("webhooks/tunnel.py",),
    "aiohttp": ("webhooks/", "sandbox/", "http/aio.py"),
}
WEBHOOKS_MAY_IMPORT = {
    "records", "errors", "payloads", "constants", "names", "retry", "webhooks", "timeouts", "__init__",
}


@dataclass(frozen=True)
class Import:
    module: str  # dotted name, resolved (``from get3w_cli import constants`` -> get3w_cli.constants)
    line: int


@dataclass
class Module:
    path: Path
    rel: str  # e.g. "cli/flows.py"
    imports: list[Import]
    tree: ast.Module

    @property
    def unit(self) -> str:
        first = self.rel.split("/")[0]
        return first.removesuffix(".py")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    nodes: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return nodes


def _resolve(node: ast.ImportFrom, rel: str) -> list[str]:
    if node.level:
        parts = ["get3w_cli", *rel.split("/")[:-1]]
        base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    names = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        sub = PACKAGE.parent / candidate.replace(".", "/")
        names.append(candidate if sub.with_suffix(".py").exists() or sub.is_dir() else base)
    return names


def load_modules() -> list[Module]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = []
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                imports += [Import(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imports += [Import(name, node.lineno) for name in _resolve(node, rel)]
        modules.append(Module(path, rel, imports, tree))
    return modules


MODULES = load_modules()


def _unit_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "get3w_cli":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer() -> None:
    """Each top-level module or package of get3w_cli is placed in the layering (add new ones to RANKS)."""
    assert {m.unit for m in MODULES} <= set(RANKS), {m.unit for m in MODULES} - set(RANKS)


def test_imports_point_down() -> None:
    """errors <- records/constants/payloads <- http <- providers <- waiting <- cli; nothing imports upwards."""
    bad = []
    for module in MODULES:
        for imp in module.imports:
            target = _unit_of(imp.module)
            if target is None or target == module.unit:
                continue
            if RANKS.get(target, 99) >= RANKS[module.unit]:
                bad.append(f"{module.rel}:{imp.line} imports {imp.module}")
    assert bad == []


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_third_party_libraries_stay_in_their_module(library: str) -> None:
    """Each library stays where it belongs (OWNERS): typer/rich in cli/, httpx in http/, pyngrok in tunnel.py."""
    users = [(m.rel, imp.line) for m in MODULES for imp in m.imports if imp.module.split(".")[0] == library]
    assert users, f"no module imports {library}: the walker is broken"
    bad = [f"{rel}:{line}" for rel, line in users if not rel.startswith(OWNERS[library])]
    assert bad == []


def test_webhooks_import_only_the_bottom_layers() -> None:
    """webhooks/ may import records, errors, payloads and constants, never providers, http or anything above."""
    bad = [f"{m.rel}:{imp.line} imports {imp.module}" for m in MODULES if m.unit == "webhooks" for imp in m.imports
           if (unit := _unit_of(imp.module)) is not None and unit not in WEBHOOKS_MAY_IMPORT]
    assert bad == []


def test_nothing_outside_cli_imports_cli() -> None:
    """The command-line layer is a leaf: only the entry point reaches into it."""
    bad = [f"{m.rel}:{imp.line}" for m in MODULES if m.unit not in ("cli", "__main__") for imp in m.imports
           if _unit_of(imp.module) == "cli"]
    assert bad == []


def _process_touches(tree: ast.AST) -> list[tuple[int, str]]:
    """Reads of the environment, prints and exits: what only the CLI may do."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in ("environ", "getenv", "environb", "putenv"):
                found.append((node.lineno, f"os.{node.attr}"))
            if node.value.id == "sys" and node.attr in ("exit", "stdout", "stderr"):
                found.append((node.lineno, f"sys.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [(node.lineno, f"from os import {a.name}") for a in node.names if a.name in ("environ", "getenv")]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "exit"):
            found.append((node.lineno, f"{node.func.id}()"))
    return found


def test_only_cli_reads_the_environment_prints_or_exits() -> None:
    """os.environ, print and sys.exit/stdout/stderr appear only in get3w_cli/cli/."""
    bad = [f"{m.rel}:{line} {what}" for m in MODULES if m.unit not in ("cli", "__main__")
           for line, what in _process_touches(m.tree)]
    assert bad == []


def test_rules_catch_a_violation() -> None:
    """The checks see a violation when there is one (guards the walker itself)."""
    tree = ast.parse("import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import httpx\n"
                     "def f():\n    import rich\n    return os.environ.get('X')\n")
    names = [n.names[0].name for n in _runtime_nodes(tree) if isinstance(n, ast.Import)]
    assert sorted(names) == ["os", "rich"]
    assert [what for _, what in _process_touches(tree)] == ["os.environ"]
    node = ast.parse("from get3w_cli import constants as C, errors").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve(node, "waiting.py") == ["get3w_cli.constants", "get3w_cli.errors"]
    relative = ast.parse("from ..http import Reply").body[0]
    assert isinstance(relative, ast.ImportFrom)
    assert _resolve(relative, "providers/abstrakt.py") == ["get3w_cli.http"]


def test_help_does_not_import_network_libraries() -> None:
    """`g3w --help` (and `g3w run --help`) load none of httpx, aiohttp or pyngrok."""
    probe = (
        "import json, sys\n"
        "from get3w_cli.cli import main\n"
        "for argv in (['g3w', '--help'], ['g3w', 'run', '--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(m for m in ('httpx', 'aiohttp', 'pyngrok') if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    *help_text, loaded = result.stdout.strip().splitlines()
    assert "Usage" in "\n".join(help_text)
    assert json.loads(loaded) == []


def test_start_up_runs_no_collection_and_the_command_runs_with_one(tmp_path: Path) -> None:
    """The collector stays off while g3w starts (imports, the command tree, parsing), and is on,
    with the start-up objects frozen, once the command's coroutine runs."""
    probe = (
        "import gc, json, sys\n"
        "seen = {'starting': 0}\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and 'enabled' not in seen\n"
        "                   and seen.__setitem__('starting', seen['starting'] + 1))\n"
        "from get3w_cli.cli import boundary, main\n"
        "real_run = boundary.run\n"
        "def run(ui, factory, **kwargs):\n"
        "    async def probe():\n"
        "        seen['enabled'], seen['frozen'] = gc.isenabled(), gc.get_freeze_count()\n"
        "        return await factory()\n"
        "    return real_run(ui, probe, **kwargs)\n"
        "boundary.run = run\n"
        "sys.argv = ['g3w', 'history', '--json']\n"
        "seen['starting'] = 0  # from here on, as the console script starts\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    seen['code'] = exc.code\n"
        "print(json.dumps(seen))\n"
    )
    env = {**os.environ, "G3W_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0 and seen["enabled"] is True and seen["frozen"] > 10_000
    assert seen["starting"] == 0


def test_a_second_command_in_one_process_freezes_nothing_more() -> None:
    """Start-up is frozen once per process: commands run one after another in one process (as the
    suite runs them) leave their garbage collectable instead of freezing it too."""
    assert invoke("history", "--json").code == 0
    frozen = gc.get_freeze_count()
    since = [[n] for n in range(5_000)]  # objects the collector tracks, made after the first command
    assert invoke("history", "--json").code == 0
    assert gc.get_freeze_count() <= frozen, "the second command froze what was made after the first"
    assert len(since) == 5_000
