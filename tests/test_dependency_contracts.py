"""The dependency rule of docs/architecture.md: the import-linter contracts of pyproject.toml hold.

The same check `.ci/run` runs (`lint-imports`), kept in the suite so a forbidden import
fails the tests too; and a copy of the code with one forbidden import added shows the
contracts catch it. The partners contract is checked against the import graph with an
edge added: it refuses vouchers' internals and allows vouchers' public surface.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter import api
from importlinter.cli import lint_imports
from importlinter.contracts.forbidden import ForbiddenContract

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "vouchers", "fraud", "partners")
PARTNERS_RULE = "partners -> vouchers: services, selectors, webhook services and the public API surface only"


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_app_imports_only_what_the_contracts_allow():
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_fraud_may_import_nothing_of_vouchers_not_even_indirectly():
    (fraud,) = [c for c in contracts()
                if c["source_modules"] == ["fraud"] and c["forbidden_modules"] == ["vouchers"]]
    assert fraud["type"] == "forbidden"
    assert "ignore_imports" not in fraud
    assert fraud["allow_indirect_imports"] is False


def test_config_is_the_bottom_except_for_its_urls_and_error_pages():
    (bottom,) = [c for c in contracts() if c["source_modules"] == ["config"]]
    assert sorted(bottom["forbidden_modules"]) == ["fraud", "partners", "vouchers"]
    assert sorted(bottom["ignore_imports"]) == [
        "config.error_pages -> vouchers.api.errors", "config.urls -> vouchers.ops.views"]


def test_a_forbidden_import_breaks_the_contracts(tmp_path):
    # given a copy of the code where fraud reads a voucher model again
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    alerts = tmp_path / "fraud" / "services" / "alerts.py"
    forbidden = "\n\ndef _staff():\n    from vouchers.models import MerchantStaff\n    return MerchantStaff\n"
    alerts.write_text(alerts.read_text() + forbidden)
    # when the contracts are checked on that copy (in its own process, so the copy is imported)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=300, check=False,
    )
    # then the fraud contract is broken, naming the import
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fraud imports nothing of vouchers" in result.stdout
    assert "fraud.services.alerts -> vouchers.models" in result.stdout


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


@pytest.fixture(scope="module")
def partners_rule() -> ForbiddenContract:
    configuration = api.read_configuration(str(ROOT / "pyproject.toml"))  # as lint-imports reads it
    (options,) = [c for c in configuration["contracts_options"] if c["name"] == PARTNERS_RULE]
    return ForbiddenContract(
        name=PARTNERS_RULE, session_options=configuration["session_options"], contract_options=options
    )


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("partners.services.agreements", "vouchers.models"),  # a model: a selector or a service instead
        ("partners.api.views", "vouchers.api.views"),  # the storefront's endpoints
        ("partners.api.views", "vouchers.api.errors"),  # the error handler's internals
        ("partners.services.statements", "vouchers.api.base"),  # the API surface is for partners' API only
        ("partners.admin", "vouchers.admin.views"),  # another app's admin pages
        ("partners.services.ledger", "vouchers.locks"),
        ("partners.tasks", "vouchers.tasks"),
    ],
)
def test_the_partners_rule_refuses_an_import_of_vouchers_internals(graph, partners_rule, importer, imported):
    changed = copy.deepcopy(graph)
    changed.add_import(importer=importer, imported=imported)
    assert not partners_rule.check(changed, verbose=False).kept


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("partners.services.agreements", "vouchers.selectors"),
        ("partners.admin", "vouchers.services.issuance"),
        ("partners.services.statements", "vouchers.webhooks.services.outbox"),
        ("partners.api.serializers", "vouchers.api.toolkit"),
        ("partners.api.views", "vouchers.api.base"),
    ],
)
def test_the_partners_rule_allows_vouchers_public_surface(graph, partners_rule, importer, imported):
    changed = copy.deepcopy(graph)
    changed.add_import(importer=importer, imported=imported)
    assert partners_rule.check(changed, verbose=False).kept


def test_the_partners_rule_lists_no_debt(partners_rule):
    """Only the public surface is allowed, by pattern: an exact edge added to the list
    would be a new exception to the rule, and must be argued for here first."""
    debt = [str(expr) for expr in partners_rule.ignore_imports if not expr.has_wildcard_expression()]
    assert debt == []
