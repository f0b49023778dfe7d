"""`connector config` against the running local stack: a company-sized table import routes bills without a redeploy,
a refused import changes nothing, a damaged version is never routed on, rollback restores the routing before.

The functions re-read the current version at most every ``TABLES_CACHE_SECONDS``; the tests move the containers'
clock past that instead of waiting (``advance``), as a minute passing would.
"""

from __future__ import annotations

import itertools
import json

import pytest

import connector.table_versions
from connector.tables import TABLES
from connector.timings import TABLES_CACHE_SECONDS
from connector_cli.main import main
from connector_local.jira_sandbox import PERSON_ACCOUNT
from connector_local.stack import LocalStack

VENDORS, BUYERS = 2000, 300


def account(buyer: int) -> str:
    return f"5b10ac8d82e05b22cc7d{buyer:04x}"


def vendor_of(number: int) -> str:
    return f"V{number:05d}"


def buyer_of(number: int) -> int:
    return (number * 7) % BUYERS


def company(**changes: str) -> dict:
    """2,000 vendors, each handled by one of 300 buyers, each buyer a Jira account; ``changes`` re-points vendors."""
    vendor_owners = {vendor_of(n): f"buyer.{buyer_of(n):03d}" for n in range(VENDORS)}
    vendor_owners.update(changes)
    return {"VendorOwners": vendor_owners, "OwnerMap": {f"buyer.{b:03d}": account(b) for b in range(BUYERS)}}


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({"OWNER_MAP": json.dumps({"*": PERSON_ACCOUNT})}, quiet=True) as running:
        for buyer in range(BUYERS):
            running.jira.add_user(account(buyer), f"Buyer {buyer:03d}")
        running.tick("PollerFunction")
        running.drain()
        yield running


@pytest.fixture(scope="module")
def advance():
    """Move every container's table clock forward (``connector.table_versions`` reads ``monotonic`` at each call);
    for the whole module, so the clock never runs back between tests."""
    offset = [0.0]
    real = connector.table_versions.monotonic
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connector.table_versions, "monotonic", lambda: real() + offset[0])

        def move(seconds: float = TABLES_CACHE_SECONDS + 1) -> None:
            offset[0] += seconds

        yield move


_numbers = itertools.count(300001)


def routed(stack, vendor: str) -> str | None:
    """Put a bill of ``vendor`` on hold, run a poll and the worker: the accountId its new issue is assigned to."""
    number = str(next(_numbers))
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor=vendor, Amount=100, Balance=100,
                                 Hold=True)
    stack.tick("PollerFunction")
    stack.drain()
    (issue,) = stack.jira.issues_with_external_id(f"Bill:Bill:{number}")
    return (issue["fields"]["assignee"] or {}).get("accountId")


def config(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["config", *args])
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path, document: dict, name: str = "tables.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def test_without_an_import_the_parameters_route_as_before(stack, capsys):
    assert routed(stack, vendor_of(1234)) == PERSON_ACCOUNT
    status, out, _ = config(capsys, "show")
    assert status == 0 and "no version imported" in out
    assert "parameter OwnerMap" in out and "default" in out


def test_a_2000_vendor_300_buyer_import_routes_a_bill_to_its_buyers_account(stack, capsys, tmp_path, advance):
    document = company()
    assert len(json.dumps(document)) > 50_000  # far beyond what any parameter (or the environment) could hold
    status, out, err = config(capsys, "import", write(tmp_path, document))
    assert status == 0, err
    assert "checked 300 Jira accountIds: all exist and are active" in out
    assert "version 1 is current" in out and "2,000 of 2,000 vendors change assignee" in out
    advance()
    assert routed(stack, vendor_of(1234)) == account(buyer_of(1234))
    assert routed(stack, vendor_of(7)) == account(buyer_of(7))
    assert routed(stack, "V-NOT-LISTED") is None  # the version's OwnerMap replaces the parameter's (no * any more)


def test_a_reimport_takes_effect_on_the_next_document_without_a_redeploy(stack, capsys, tmp_path, advance):
    moved = vendor_of(42)
    document = company(**{moved: "buyer.299"})
    status, out, _ = config(capsys, "import", write(tmp_path, document, "june.json"))
    assert status == 0 and "1 of 2,000 vendors change assignee" in out
    advance()
    assert routed(stack, moved) == account(299)
    status, out, _ = config(capsys, "history", "--format", "json")
    newest = json.loads(out)[0]
    assert newest["current"] and newest["action"] == "import" and newest["source"] == "june.json"
    assert newest["by"].startswith("arn:aws:") and newest["effect"]["vendors_reassigned"] == 1


def test_an_invalid_import_exits_2_in_one_line_and_routing_keeps_the_last_good_version(stack, capsys, tmp_path,
                                                                                      advance):
    before = config(capsys, "history", "--format", "json")[1]
    bad = company()
    bad["OwnerMap"]["buyer.017"] = 5
    status, out, err = config(capsys, "import", write(tmp_path, bad, "bad.json"))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert 'bad.json: OwnerMap: entry "buyer.017" must be a Jira accountId' in err and "not a number" in err
    unknown = company()
    unknown["OwnerMap"]["buyer.018"] = "5b10ac8d82e05b22ccffffff"
    status, _, err = config(capsys, "import", write(tmp_path, unknown, "unknown.json"))
    assert status == 2 and err.count("\n") == 1
    assert 'OwnerMap: entry "buyer.018": Jira has no account 5b10ac8d82e05b22ccffffff' in err
    assert config(capsys, "history", "--format", "json")[1] == before
    advance()
    assert routed(stack, vendor_of(42)) == account(299)


def test_a_version_damaged_by_hand_is_never_routed_on(stack, capsys, tmp_path, advance):
    """A writer that bypasses the CLI (a script, a console edit) makes an invalid version current: the functions
    refuse it, keep the last good version, and say so."""
    versions = stack_versions(stack)
    good = versions.current()
    versions.publish({"OwnerMap": {"buyer.042": None}}, expected=good, by="a script", action="import", effect={})
    advance()
    assert routed(stack, vendor_of(42)) == account(299)
    status, out, _ = config(capsys, "show")
    assert f"version {good} is in effect" in out and f"version {good + 1} is current but refused" in out
    assert 'OwnerMap: entry "buyer.042" must be a Jira accountId' in out
    status, out, _ = config(capsys, "import", write(tmp_path, company(**{vendor_of(42): "buyer.299"}), "fix.json"))
    assert status == 0
    advance()


def test_rollback_restores_the_previous_routing(stack, capsys, advance):
    assert routed(stack, vendor_of(42)) == account(299)
    status, out, err = config(capsys, "rollback", "1")
    assert status == 0, err
    assert "restoring version 1's tables" in out and "1 of 2,000 vendors change assignee" in out
    advance()
    assert routed(stack, vendor_of(42)) == account(buyer_of(42))
    history = json.loads(config(capsys, "history", "--format", "json")[1])
    assert history[0]["action"] == "rollback" and history[0]["rollback_of"] == 1 and history[0]["current"]
    assert [r["event"] for r in stack_versions(stack).audit_trail()].count("config-rollback") == 1


def test_export_then_import_round_trips_and_changes_nothing(stack, capsys, tmp_path):
    exported = tmp_path / "exported.json"
    assert config(capsys, "export", "--output", str(exported))[0] == 0
    assert json.loads(exported.read_text()) == company()
    status, out, _ = config(capsys, "import", str(exported))
    assert status == 0 and "unchanged" in out


def test_show_names_where_each_table_comes_from(stack, capsys):
    status, out, _ = config(capsys, "show", "--format", "json")
    shown = json.loads(out)
    assert status == 0 and set(shown["tables"]) == set(TABLES)
    version = shown["version"]
    assert shown["tables"]["OwnerMap"]["source"] == shown["tables"]["VendorOwners"]["source"] == f"version {version}"
    assert shown["tables"]["VendorOwners"]["entries"] == VENDORS
    assert shown["tables"]["PriorityTable"]["source"] == "default"


def test_preview_uses_the_tables_in_effect(stack, capsys, advance):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="399999", Vendor=vendor_of(999), Amount=5,
                                 Balance=5, Hold=True)
    capsys.readouterr()
    assert main(["preview", "--format", "json"]) == 0
    planned = {row["document"]: row for row in json.loads(capsys.readouterr().out)}
    assert planned["Bill:Bill:399999"]["assignee"] == account(buyer_of(999))


def stack_versions(stack):
    from connector.table_store import DynamoTableVersions

    return DynamoTableVersions(stack.aws.client("dynamodb"), stack.aws.outputs["TableName"])


@pytest.mark.parametrize("variable, value, says", [
    ("PRIORITY_TABLE", '{"levels": 3}', 'PriorityTable (PRIORITY_TABLE): entry "levels" must be a list'),
    ("OWNER_MAP", '{"buyer.kim": 5}', 'OwnerMap (OWNER_MAP): entry "buyer.kim" must be a Jira accountId'),
    ("EXCEPTION_RULES", "null", "ExceptionRules (EXCEPTION_RULES): must be a JSON object"),
])
def test_a_bad_table_setting_is_one_line_and_exit_2(monkeypatch, capsys, variable, value, says):
    """The examples of issue #21, from a shell: one line, exit 2, the setting named, no Python type names."""
    for name, setting in {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_PROJECT_KEY": "AP",
                          "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", variable: value}.items():
        monkeypatch.setenv(name, setting)
    for name in ("TABLE_NAME", "PARAMETER_TABLES_ARN"):
        monkeypatch.delenv(name, raising=False)
    status, out, err = config(capsys, "show")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("connector config: configuration error: ") and says in err
    assert "'int'" not in err and "iterable" not in err
