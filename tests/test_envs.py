"""The conda environments in envs/: they parse, pin versions inside pyproject.toml's ranges, and every
rule points to one that names the packages its script imports.

conda cannot be installed here, so `--use-conda` itself is not exercised; what a rule imports is found
by parsing its script and, transitively, the kappaflow modules the script reaches.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_DIR = REPO_ROOT / "envs"
ENV_FILES = sorted(ENV_DIR.glob("*.yaml"))
PACKAGE_ROOT = REPO_ROOT / "workflow" / "scripts"

# Import names whose distribution is called differently (conda-forge and PyPI agree for these).
DISTRIBUTION_OF_IMPORT = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "mp_api": "mp-api",
    "torch_geometric": "torch-geometric",
    "pytorch_lightning": "pytorch-lightning",
    "PIL": "pillow",
}
# conda-forge names of PyPI distributions.
CONDA_ALIASES = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "pytorch-geometric": "torch-geometric",
}
# Modules that come with Snakemake's script preamble or with the repository itself.
PROVIDED = {"snakemake", "kappaflow"}


def canonical(name: str) -> str:
    name = re.sub(r"[-_.]+", "-", name.split("::")[-1].strip().lower())
    return CONDA_ALIASES.get(name, name)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """`name =1.2.3`, `name==1.2.3` or `channel::name 1.2` -> (canonical name, version or None)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.:\-]+)\s*(?:(?:==|=|\s)\s*([0-9][^\s,;]*))?\s*", spec)
    assert match, f"cannot read the dependency {spec!r}"
    return canonical(match.group(1)), match.group(2)


def env_dependencies(env: dict) -> dict[str, str | None]:
    """Every conda and pip dependency of an environment: canonical name -> pinned version."""
    deps: dict[str, str | None] = {}
    for item in env["dependencies"]:
        specs = item["pip"] if isinstance(item, dict) else [item]
        for spec in specs:
            name, version = parse_spec(spec)
            deps[name] = version
    return deps


def load_env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def module_file(module: str) -> Path | None:
    """The file of a kappaflow module (`kappaflow.a.b`), or None if it is not one."""
    base = PACKAGE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_function(node: ast.AST) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))


class ModuleInfo:
    """One parsed file: its top-level functions, and the imports of its module-level code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        in_package = path.is_relative_to(PACKAGE_ROOT / "kappaflow")
        package = module_name(path) if in_package else ""
        self.package = package if path.name == "__init__.py" else package.rpartition(".")[0]
        self.functions = {node.name: node for node in self.tree.body if is_function(node)}

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.rsplit(".", node.level - 1)[0] if node.level > 1 else self.package
        return f"{base}.{node.module}" if node.module else base


def is_alias_attribute(node: ast.AST, aliases: dict[str, str]) -> bool:
    """`alias.name` where alias is an imported kappaflow module."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases


def walk_imports(module: ModuleInfo, nodes: list[ast.AST], skip_functions: bool):
    """Yield (imported module, imported name or None, local alias) for the imports among `nodes`,
    outside `if TYPE_CHECKING:` blocks and, with skip_functions, outside top-level function bodies."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if skip_functions and is_function(node) and node in module.functions.values():
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, alias.asname or alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            parent = module.absolute(node)
            for alias in node.names:
                yield parent, alias.name, alias.asname or alias.name
        todo.extend(ast.iter_child_nodes(node))


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules that running `script` imports: the script's own imports, the
    module-level imports of every kappaflow module it reaches, and the imports inside the kappaflow
    functions it uses (deliberately lazy imports of functions it never calls are not counted).
    Functions are followed through `from kappaflow.x import f`, calls of same-module functions and
    `alias.f` on an imported kappaflow module."""
    cache: dict[Path, ModuleInfo] = {}
    external: set[str] = set()
    seen: set[tuple[Path, str | None]] = set()
    todo: list[tuple[Path, str | None]] = [(script, None)]

    def info(path: Path) -> ModuleInfo:
        if path not in cache:
            cache[path] = ModuleInfo(path)
        return cache[path]

    def reach(module: str, name: str | None) -> None:
        parts = module.split(".")
        # Importing kappaflow.a.b runs kappaflow/__init__.py and kappaflow/a/__init__.py too.
        todo.extend((f, None) for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i]))))
        if name is not None:
            if submodule := module_file(f"{module}.{name}"):
                todo.append((submodule, None))
            elif (path := module_file(module)) and name in info(path).functions:
                todo.append((path, name))

    while todo:
        path, function = todo.pop()
        if (path, function) in seen:
            continue
        seen.add((path, function))
        mod = info(path)
        nodes = [mod.functions[function]] if function else mod.tree.body
        module_aliases: dict[str, str] = {}
        for imported, name, alias in walk_imports(
            mod, nodes, skip_functions=function is None and path != script
        ):
            top = imported.split(".")[0]
            if top == "kappaflow":
                reach(imported, name)
                target = f"{imported}.{name}" if name else imported
                if module_file(target):
                    module_aliases[alias] = target
            elif top and top not in sys.stdlib_module_names and top not in PROVIDED and top != "__future__":
                external.add(top)
        if function:  # same-module functions it names, and `alias.f` of kappaflow modules
            for node in ast.walk(mod.functions[function]):
                if isinstance(node, ast.Name) and node.id in mod.functions:
                    todo.append((path, node.id))
                elif is_alias_attribute(node, module_aliases):
                    reach(module_aliases[node.value.id], node.attr)
        elif path == script:
            for node in ast.walk(mod.tree):
                if is_alias_attribute(node, module_aliases):
                    reach(module_aliases[node.value.id], node.attr)
    return external


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_parses_with_conda_forge_and_python(path: Path) -> None:
    env = load_env(path)
    assert set(env) >= {"channels", "dependencies"}, f"{path.name}: needs channels and dependencies"
    assert env["channels"][0] == "conda-forge", f"{path.name}: conda-forge must be the first channel"
    assert "defaults" not in env["channels"], f"{path.name}: the defaults channel is not wanted"
    deps = env_dependencies(env)
    assert "python" in deps, f"{path.name}: names no python"
    if any(isinstance(item, dict) for item in env["dependencies"]):
        assert "pip" in deps, f"{path.name}: a pip section needs pip among the conda dependencies"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_match_pyproject(path: Path) -> None:
    project = pyproject()["project"]
    ranges = {canonical(r.name): r.specifier for r in map(Requirement, project["dependencies"])}
    ranges["python"] = SpecifierSet(project["requires-python"])
    for name, version in env_dependencies(load_env(path)).items():
        if name == "pip":
            continue
        assert version, f"{path.name}: {name} is not pinned"
        if name in ranges:
            assert ranges[name].contains(Version(version), prereleases=True), (
                f"{path.name}: {name} {version} is outside pyproject.toml's {ranges[name]}"
            )


def test_at_least_the_three_envs_exist() -> None:
    assert {p.name for p in ENV_FILES} >= {"data.yaml", "train.yaml", "plot.yaml"}


def test_every_rule_has_an_existing_conda_env(workflow_rules) -> None:
    problems = []
    for rule in workflow_rules.values():
        if rule.action is None:
            continue
        if rule.action == "run":
            problems.append(f"{rule.name}: a run: block cannot use a conda env; use script:")
        elif rule.conda_env is None:
            problems.append(f"{rule.name}: no conda: directive")
        elif not rule.conda_env.is_file():
            problems.append(f"{rule.name}: conda env {rule.conda_env} does not exist")
        elif rule.conda_env.parent != ENV_DIR:
            problems.append(f"{rule.name}: conda env {rule.conda_env} is not in envs/")
    assert not problems, "\n".join(problems)


def test_every_rule_env_names_what_its_script_imports(workflow_rules) -> None:
    problems = []
    scripted = [r for r in workflow_rules.values() if r.script and r.conda_env and r.conda_env.is_file()]
    assert scripted, "no rule with a script and a conda env"
    for rule in scripted:
        if not rule.script.is_file():
            problems.append(f"{rule.name}: script {rule.script} does not exist")
            continue
        deps = env_dependencies(load_env(rule.conda_env))
        for module in sorted(third_party_imports(rule.script)):
            if canonical(DISTRIBUTION_OF_IMPORT.get(module, module)) not in deps:
                problems.append(f"{rule.name} ({rule.conda_env.name}): imports {module}, which the env lacks")
    assert not problems, "\n".join(problems)


def test_import_scan_follows_kappaflow_modules(tmp_path: Path) -> None:
    """The scanner itself: module-level imports of reached modules count, lazy ones only in the
    functions a script uses."""
    package = PACKAGE_ROOT / "kappaflow"
    graphs = module_file("kappaflow.graphs")
    assert graphs is not None
    script = tmp_path / "use_graphs.py"
    script.write_text("from kappaflow.graphs import read_graph_set\nimport yaml\n")
    found = third_party_imports(script)
    module_level = {
        imported.split(".")[0]
        for imported, _, _ in walk_imports(
            ModuleInfo(graphs), ModuleInfo(graphs).tree.body, skip_functions=True
        )
    }
    assert "yaml" in found
    assert module_level - set(sys.stdlib_module_names) - PROVIDED - {"__future__"} <= found
    assert package.is_dir()
