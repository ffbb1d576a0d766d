"""``bus connector new``: every kind writes a connector that works on the day it is written.

The three kinds are generated once, into a temporary copy of the repository layout they need,
and each is proved the way an integrator would: imported from there, linted and type-checked,
its own test run with pytest in a subprocess, its mappings checked and their golden examples run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from string import Template

import pytest
from typer.testing import CliRunner

from bus.cli import app
from bus.mapping import MappingCatalog
from bus.mapping.check import check_catalog
from bus.mapping.golden import run_all
from bus.scaffold import MAX_NAME_LENGTH, Kind, add_entry_point, plan_connector
from bus.scaffold.examples import TEMPLATES

ROOT = Path(__file__).resolve().parents[2]
AGENCY = "000.00.00.G01"
# One name at the longest allowed, to prove the generated lines still fit 100 columns.
NAMES = {"rest": "land_registry", "soap": "tax_office", "poller": "business_registry_of_provinces"}
CLASSES = {
    "rest": "LandRegistryConnector",
    "soap": "TaxOfficeConnector",
    "poller": "BusinessRegistryOfProvincesConnector",
}
TOOLS = Path(sys.executable).parent

runner = CliRunner()


def new(*args: str) -> tuple[int, str]:
    """Run ``bus connector new`` with ``args``; its exit code and output."""
    result = runner.invoke(app, ["connector", "new", *args])
    return result.exit_code, result.output


def layout(root: Path, *, contracts: bool = True) -> Path:
    """The part of the repository the scaffold writes into and its output needs, under ``root``."""
    shutil.copy2(ROOT / "pyproject.toml", root)
    (root / "connectors").mkdir()
    shutil.copy2(ROOT / "connectors" / "__init__.py", root / "connectors")
    if contracts:
        # Copied, not linked: a SOAP connector's WSDL goes under contracts/partners/, and the
        # SOAP kit looks for it beside the contracts package it imports.
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "contracts", root / "contracts", ignore=ignore)
        # Linked: mypy finds bus beside the generated code (it cannot see an editable install),
        # and the same files keep the project's mypy cache valid.
        (root / "bus").symlink_to(ROOT / "bus", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository layout with a connector of each kind written into it."""
    root = layout(tmp_path_factory.mktemp("repo"))
    for kind, name in NAMES.items():
        code, output = new(name, "--kind", kind, "--agency", AGENCY, "--dest", str(root))
        assert code == 0, output
    return root


def environment(root: Path) -> dict[str, str]:
    """The environment in which the generated package and its mappings are found first."""
    return {**os.environ, "PYTHONPATH": str(root), "BUS_MAPPINGS_DIR": str(root / "mappings")}


def run(root: Path, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command in ``root`` with :func:`environment`, capturing its output."""
    return subprocess.run(
        command,
        cwd=root,
        env=environment(root),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def generated_python(root: Path) -> list[str]:
    """Every Python file the scaffold wrote, relative to ``root``."""
    files = [f"tests/connectors/test_{name}.py" for name in NAMES.values()]
    for name in NAMES.values():
        files += sorted(str(p.relative_to(root)) for p in (root / "connectors" / name).glob("*.py"))
    return files


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_each_kind_writes_its_files_and_entry_point(repo: Path, kind: str) -> None:
    """The connector folder, mappings, test, entry point (and for SOAP, a WSDL) are written."""
    name = NAMES[kind]
    package = repo / "connectors" / name
    for part in ("__init__.py", "connector.py", "connector.toml", "simulator.py", "README.md"):
        assert (package / part).is_file(), part
    assert (repo / "tests" / "connectors" / f"test_{name}.py").is_file()
    messages = sorted(p.name for p in (repo / "mappings" / name / "1.0").glob("*.yaml"))
    assert len(messages) == 2
    assert any(m.endswith(".in.yaml") for m in messages)
    assert any(m.endswith(".out.yaml") for m in messages)
    pyproject = (repo / "pyproject.toml").read_text(encoding="utf-8")
    assert f'{name} = "connectors.{name}:{CLASSES[kind]}"' in pyproject
    wsdl = repo / "contracts" / "partners" / name / f"{name}.wsdl"
    assert wsdl.is_file() == (kind == "soap")


def test_the_generated_connectors_import_from_the_destination(repo: Path) -> None:
    """Each package imports from the destination and builds from its own connector.toml."""
    script = "\n".join(
        [
            "import importlib, sys",
            "from bus.connector import ConnectorConfig",
            "from bus.poller import PollingSource",
            f"for name, cls in {sorted(zip(NAMES.values(), CLASSES.values(), strict=True))!r}:",
            "    module = importlib.import_module(f'connectors.{name}')",
            f"    assert module.__file__.startswith({str(repo)!r}), module.__file__",
            "    factory = getattr(module, cls)",
            "    connector = factory(ConnectorConfig.from_file(factory.default_config))",
            "    assert connector.config.id == name",
            "    assert hasattr(connector, 'deliver') or isinstance(connector, PollingSource)",
            "    assert module.SimulatorState is not None",
            "    print(name, 'ok')",
        ]
    )
    result = run(repo, sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" ok") == len(NAMES)


def test_the_generated_code_passes_ruff_and_mypy(repo: Path) -> None:
    """ruff (lint and format) and mypy --strict find nothing in any generated file."""
    files = generated_python(repo)
    for command in (["check"], ["format", "--check"]):
        result = run(repo, str(TOOLS / "ruff"), *command, *files)
        assert result.returncode == 0, result.stdout + result.stderr
    # The project's cache: warm after `make test`'s own mypy step, it makes this a second.
    mypy = [str(TOOLS / "mypy"), "--strict", "--cache-dir", str(ROOT / ".mypy_cache")]
    result = run(repo, *mypy, *files, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_the_generated_test_passes_against_the_simulator(repo: Path, kind: str) -> None:
    """The generated test file passes in its own pytest, over real HTTP on loopback."""
    test = f"tests/connectors/test_{NAMES[kind]}.py"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    result = run(repo, *command, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_the_generated_mapping_passes_its_check_and_golden_examples(repo: Path, kind: str) -> None:
    """`bus mappings check` finds nothing and each message has a golden example that passes."""
    catalog = MappingCatalog.load(repo / "mappings", partners=(NAMES[kind],))
    assert check_catalog(catalog) == []
    results = run_all(catalog)
    assert [r.detail for r in results if not r.ok] == []
    assert {r.case.mapping.message for r in results} == {m.message for m in catalog}


@pytest.mark.parametrize("kind", list(Kind))
def test_every_generated_line_fits_at_the_longest_name(tmp_path: Path, kind: Kind) -> None:
    """With the longest name allowed, every generated Python line fits the 100 columns."""
    shutil.copy2(ROOT / "pyproject.toml", tmp_path)
    plan = plan_connector("x" * MAX_NAME_LENGTH, kind, dest=tmp_path)
    variables = plan.variables()
    for template, target in plan.files():
        if target.suffix == ".py":
            source = Template((TEMPLATES / template).read_text(encoding="utf-8"))
            lines = source.substitute(variables).splitlines()
            assert max(len(line) for line in lines) <= 100, target


@pytest.mark.parametrize(
    "name",
    [
        "Land",
        "1land",
        "l",
        "land-registry",
        "land__registry",
        "land_",
        "import",
        "x" * (MAX_NAME_LENGTH + 1),
    ],
    ids=[
        "upper",
        "digit-first",
        "short",
        "dash",
        "double-underscore",
        "trailing",
        "keyword",
        "long",
    ],
)
def test_a_bad_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    """An id the bus cannot take (or a Python keyword) is refused, saying what a good one is."""
    root = layout(tmp_path, contracts=False)
    before = sorted(root.rglob("*"))
    code, output = new(name, "--kind", "rest", "--dest", str(root))
    assert code == 2
    assert "connector name" in output
    assert sorted(root.rglob("*")) == before


def test_an_existing_connector_is_refused_unless_forced(repo: Path) -> None:
    """Writing a name again is refused with what to do; --force rewrites, with one entry point."""
    name = NAMES["rest"]
    code, output = new(name, "--kind", "rest", "--agency", AGENCY, "--dest", str(repo))
    assert code == 2
    assert "already exists" in output and "--force" in output
    connector = repo / "connectors" / name / "connector.py"
    written = connector.read_text(encoding="utf-8")
    connector.write_text("# edited by hand\n", encoding="utf-8")
    code, output = new(name, "--kind", "rest", "--agency", AGENCY, "--dest", str(repo), "--force")
    assert code == 0, output
    assert connector.read_text(encoding="utf-8") == written
    pyproject = (repo / "pyproject.toml").read_text(encoding="utf-8")
    assert pyproject.count(f"{name} = ") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agency", "H12"], "not an agency code"),
        (["--port", "80"], "out of range"),
        (["--title", 'say "hi"'], "title"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    """An invalid agency code, port or title is refused before anything is written."""
    root = layout(tmp_path, contracts=False)
    code, output = new("land_registry", "--kind", "rest", "--dest", str(root), *args)
    assert code == 2
    assert message in output
    assert not (root / "connectors" / "land_registry").exists()


def test_a_destination_without_pyproject_is_refused(tmp_path: Path) -> None:
    """Outside a repository root the command says to run it there or to pass --dest."""
    code, output = new("land_registry", "--kind", "rest", "--dest", str(tmp_path))
    assert code == 2
    assert "--dest" in output
    assert list(tmp_path.iterdir()) == []


def test_the_entry_point_is_added_in_order_keeping_the_rest(tmp_path: Path) -> None:
    """The line goes into the connectors' table in name order; comments and others stay."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n\n# Connectors register here.\n'
        '[project.entry-points."lienthong_bus.connectors"]\n'
        'alpha = "connectors.alpha:A"\nomega = "connectors.omega:O"\n\n[tool.x]\ny = 1\n',
        encoding="utf-8",
    )
    assert add_entry_point(pyproject, "middle", "connectors.middle:MiddleConnector")
    assert not add_entry_point(pyproject, "middle", "connectors.middle:MiddleConnector")
    lines = pyproject.read_text(encoding="utf-8").splitlines()
    table = lines.index('[project.entry-points."lienthong_bus.connectors"]')
    assert lines[table - 1] == "# Connectors register here."
    assert lines[table + 1 : table + 4] == [
        'alpha = "connectors.alpha:A"',
        'middle = "connectors.middle:MiddleConnector"',
        'omega = "connectors.omega:O"',
    ]
    assert lines[-2:] == ["[tool.x]", "y = 1"]


def test_a_missing_entry_point_table_is_appended(tmp_path: Path) -> None:
    """A pyproject.toml without the connectors' table gets one at its end."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"', encoding="utf-8")
    assert add_entry_point(pyproject, "land_registry", "connectors.land_registry:L")
    assert pyproject.read_text(encoding="utf-8").endswith(
        '\n[project.entry-points."lienthong_bus.connectors"]\n'
        'land_registry = "connectors.land_registry:L"\n'
    )
