"""Imported table versions: stored whole or not at all (moto DynamoDB, the table built from template.yaml), read back
verified, and never routed on when they fail validation; the containers' cache reads one small item a minute.

The invariants stated as properties: any document the validators accept round-trips through store, export and import
unchanged; any document they refuse leaves the current version, and everything stored, as it was.
"""

from __future__ import annotations

import json
import random
import string

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from connector.config import Settings
from connector.errors import ConfigurationError, TransientError
from connector.table_store import (CHUNK_BYTES, DynamoTableVersions, ParameterTablesSecret, VersionConflict,
                                   parameter_lines)
from connector.table_versions import TablesInEffect
from connector.tables import TABLES, digest, parse_document
from tests.core.conftest import table_definition

BASE = {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_PROJECT_KEY": "AP",
        "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"}


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="connector-test", BillingMode="PAY_PER_REQUEST", **table_definition())
        yield client


@pytest.fixture
def versions(dynamodb, clock):
    return DynamoTableVersions(dynamodb, "connector-test", clock=clock)


def publish(versions, document, expected="current"):
    return versions.publish(document, expected=versions.current() if expected == "current" else expected,
                            by="arn:aws:iam::123456789012:user/ops", action="import", effect={})


def company(vendors: int, seed: int = 1) -> dict:
    """Vendors with a buyer each, and an accountId of their own (Jira's ``557058:<uuid>`` form) for every vendor."""
    rng = random.Random(seed)

    def account() -> str:
        return "557058:" + "-".join("".join(rng.choices("0123456789abcdef", k=n)) for n in (8, 4, 4, 4, 12))

    buyers = [account() for _ in range(300)]
    return {"VendorOwners": {f"VEND-{n:06d}": f"buyer.{n % 300:03d}" for n in range(vendors)},
            "OwnerMap": {f"buyer.{b:03d}": buyers[b] for b in range(300)}
            | {f"VEND-{n:06d}": account() for n in range(vendors)}}


# --- the store ---------------------------------------------------------------------------------------------------------


def test_a_version_is_stored_whole_and_read_back_verified(versions):
    assert versions.current() is None and versions.history() == []
    first = publish(versions, {"OwnerMap": {"kim": "acc-kim"}})
    assert (first.number, versions.current()) == (1, 1)
    assert versions.load(1) == {"OwnerMap": {"kim": "acc-kim"}}
    second = publish(versions, {})
    assert second.number == 2 and versions.load(2) == {}
    assert [info.number for info in versions.history()] == [2, 1]
    assert versions.history()[1].by == "arn:aws:iam::123456789012:user/ops"


def chunks(dynamodb, number: int) -> list[dict]:
    return dynamodb.query(TableName="connector-test", KeyConditionExpression="PK = :pk",
                          ExpressionAttributeValues={":pk": {"S": f"CONFIG#tables#V#{number:08d}"}})["Items"]


def test_more_than_a_megabyte_of_tables_round_trips(versions, dynamodb):
    document = company(12_000)
    assert len(json.dumps(document)) > 1_000_000
    parse_document(document, "big.json")
    info = publish(versions, document)
    assert versions.load(info.number) == document and info.size > 1_000_000
    assert all(len(item["data"]["B"]) <= CHUNK_BYTES for item in chunks(dynamodb, info.number))


def test_a_document_larger_than_one_item_is_cut_into_chunks_and_put_together_again(versions, dynamodb, monkeypatch):
    monkeypatch.setattr("connector.table_store.CHUNK_BYTES", 20_000)
    document = company(3_000, seed=7)
    info = publish(versions, document)
    assert len(chunks(dynamodb, info.number)) >= 5
    assert versions.load(info.number) == document


def test_a_second_import_made_on_a_stale_current_version_changes_nothing(versions):
    publish(versions, {"OwnerMap": {"kim": "acc-1"}})
    publish(versions, {"OwnerMap": {"kim": "acc-2"}})
    with pytest.raises(VersionConflict, match="version 2 was made current while this one was being stored"):
        publish(versions, {"OwnerMap": {"kim": "acc-3"}}, expected=1)
    assert versions.current() == 2 and versions.load(2) == {"OwnerMap": {"kim": "acc-2"}}
    assert [info.number for info in versions.history()] == [2, 1]


def test_a_version_is_invisible_until_its_pointer_moves_and_a_failed_write_leaves_no_trace(versions, monkeypatch):
    publish(versions, {"OwnerMap": {"kim": "acc-1"}})

    def interrupted(*args, **kwargs):
        raise TransientError("DynamoDB update_item on the tables: ServiceUnavailable")

    monkeypatch.setattr(versions, "_switch", interrupted)
    with pytest.raises(TransientError):
        publish(versions, company(3000))
    assert versions.current() == 1 and versions.load(1) == {"OwnerMap": {"kim": "acc-1"}}
    assert [info.number for info in versions.history()] == [1]


@pytest.mark.parametrize("damage, says", [
    (lambda items: items[0].update(data={"B": b"garbage"}), "do not decompress"),
    (lambda items: items.pop(), "chunks are stored"),
])
def test_a_damaged_version_is_refused_by_its_reader(versions, dynamodb, damage, says):
    info = publish(versions, company(3000))
    partition = f"CONFIG#tables#V#{info.number:08d}"
    items = dynamodb.query(TableName="connector-test", KeyConditionExpression="PK = :pk",
                           ExpressionAttributeValues={":pk": {"S": partition}})["Items"]
    for item in items:
        dynamodb.delete_item(TableName="connector-test", Key={"PK": item["PK"], "SK": item["SK"]})
    damage(items)
    for item in items:
        dynamodb.put_item(TableName="connector-test", Item=item)
    with pytest.raises(ConfigurationError, match=f"tables version {info.number} is damaged: .*{says}"):
        versions.load(info.number)


def test_the_parameter_tables_secret_is_read_line_by_line():
    assert parameter_lines("OWNER_MAP={\"a\": \"b=c\"}\n\nROUND_ROBIN_ASSIGNEES=\n", "s") == {
        "OWNER_MAP": '{"a": "b=c"}', "ROUND_ROBIN_ASSIGNEES": ""}
    with pytest.raises(ConfigurationError, match="line 2 is not VARIABLE=value"):
        parameter_lines("OWNER_MAP={}\nnot a line", "s")


class Refusing:
    """An AWS client that answers one operation as AWS does when it refuses (``code``, ``status``), once ``refuse``
    is called; every other call reaches the real (moto) client."""

    def __init__(self, inner, operation: str) -> None:
        self.inner, self.operation, self.error = inner, operation, None

    def refuse(self, code: str, status: int) -> None:
        self.error = ClientError({"Error": {"Code": code, "Message": code},
                                  "ResponseMetadata": {"HTTPStatusCode": status}}, self.operation)

    def __getattr__(self, name):
        if name == self.operation and self.error is not None:
            def refused(**kwargs):
                raise self.error
            return refused
        return getattr(self.inner, name)


@pytest.mark.parametrize("code, status", [("ThrottlingException", 400), ("ProvisionedThroughputExceededException", 400),
                                          ("InternalServerError", 500)])
def test_dynamodb_throttled_or_failing_is_ridden_out_by_a_running_container_and_retried_at_a_cold_start(
        dynamodb, clock, code, status):
    """What AWS raises (a ``ClientError``), not a ``TransientError`` made up by the test: the adapter must say it is
    transient, or the container stops routing on tables it already holds."""
    client = Refusing(dynamodb, "get_item")
    versions = DynamoTableVersions(client, "connector-test", clock=clock)
    publish(versions, {"OwnerMap": {"kim": "acc-1"}})
    cache, _ = in_effect(versions, clock)
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    client.refuse(code, status)
    clock.advance(61)
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    with pytest.raises(TransientError, match=code):
        in_effect(versions, clock)[0].get()


def test_a_refusal_of_the_functions_rights_on_the_tables_is_not_ridden_out(dynamodb, clock):
    client = Refusing(dynamodb, "get_item")
    versions = DynamoTableVersions(client, "connector-test", clock=clock)
    cache, _ = in_effect(versions, clock)
    cache.get()
    client.refuse("AccessDeniedException", 400)
    clock.advance(61)
    with pytest.raises(ClientError, match="AccessDenied"):
        cache.get()


@pytest.fixture
def parameter_secret():
    """The parameter tables' secret as the template writes it (``VARIABLE=value`` lines), in moto."""
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="connector-parameter-tables",
                                   SecretString='OWNER_MAP={"kim": "acc-1"}\nROUND_ROBIN_ASSIGNEES=\n')["ARN"]
        yield client, arn


def test_the_parameter_tables_secret_reaches_the_settings_and_an_explicit_variable_wins(parameter_secret,
                                                                                          monkeypatch):
    from connector.wiring import Wiring

    _, arn = parameter_secret
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert Wiring({**BASE, "PARAMETER_TABLES_ARN": arn}).refresh_tables().settings.owner_map == {"kim": "acc-1"}
    wiring = Wiring({**BASE, "PARAMETER_TABLES_ARN": arn, "OWNER_MAP": '{"kim": "acc-local"}'})
    assert wiring.refresh_tables().settings.owner_map == {"kim": "acc-local"}


@pytest.mark.parametrize("code, status", [("ThrottlingException", 400), ("InternalServiceError", 500)])
def test_secrets_manager_throttled_or_failing_is_ridden_out_by_a_running_container(parameter_secret, clock, code,
                                                                                  status):
    client, arn = parameter_secret
    refusing = Refusing(client, "get_secret_value")
    secret = ParameterTablesSecret(refusing, arn)
    cache = TablesInEffect(lambda: {**BASE, **secret.read()}, None, clock=clock)
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    refusing.refuse(code, status)
    clock.advance(61)
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    with pytest.raises(TransientError, match=code):
        secret.read()


# --- the container's cache -------------------------------------------------------------------------------------------


class CountingStore:
    """A version store that counts what the cache asks of it."""

    def __init__(self, versions: DynamoTableVersions) -> None:
        self.inner, self.pointer_reads, self.loads = versions, 0, []

    def current(self):
        self.pointer_reads += 1
        return self.inner.current()

    def load(self, number):
        self.loads.append(number)
        return self.inner.load(number)

    def history(self):
        return self.inner.history()


def in_effect(store, clock, env=None):
    environment = {"value": dict(BASE, **(env or {}))}
    cache = TablesInEffect(lambda: environment["value"], store, clock=clock)
    return cache, environment


def test_the_cache_reads_the_pointer_once_an_interval_and_the_document_only_when_it_moved(versions, clock):
    publish(versions, {"OwnerMap": {"kim": "acc-1"}})
    store = CountingStore(versions)
    cache, _ = in_effect(store, clock)
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    clock.advance(59)
    cache.get()
    assert (store.pointer_reads, store.loads) == (1, [1])
    clock.advance(2)
    cache.get()
    assert (store.pointer_reads, store.loads) == (2, [1])
    publish(versions, {"OwnerMap": {"kim": "acc-2"}})
    assert cache.get().settings.owner_map == {"kim": "acc-1"}  # within the interval: what it read
    clock.advance(61)
    assert cache.get().settings.owner_map == {"kim": "acc-2"} and store.loads == [1, 2]


def test_a_version_overrides_only_its_own_tables_and_the_parameters_keep_the_rest(versions, clock):
    publish(versions, {"VendorOwners": {"V1": "kim"}})
    cache, _ = in_effect(versions, clock, {"OWNER_MAP": '{"kim": "acc-param"}', "VENDOR_OWNERS": '{"V1": "lee"}'})
    now = cache.get()
    assert now.settings.owner_map == {"kim": "acc-param"} and now.settings.triage.vendor_owners == {"V1": "kim"}
    assert now.parameters.triage.vendor_owners == {"V1": "lee"} and (now.version, now.pointer) == (1, 1)


def test_a_refused_version_never_replaces_the_last_good_one_in_a_running_container(versions, clock):
    publish(versions, {"OwnerMap": {"kim": "acc-good"}})
    cache, _ = in_effect(versions, clock)
    assert cache.get().settings.owner_map == {"kim": "acc-good"}
    publish(versions, {"OwnerMap": {"kim": 7}})  # written without the CLI's validation
    clock.advance(61)
    now = cache.get()
    assert now.settings.owner_map == {"kim": "acc-good"} and (now.version, now.pointer) == (1, 2)
    assert 'OwnerMap: entry "kim" must be a Jira accountId' in now.refused[2] and cache.refusals == 1
    clock.advance(61)
    cache.get()
    assert cache.refusals == 1  # refused once, not re-read every minute


def test_a_new_container_facing_a_refused_version_takes_the_newest_earlier_one_that_passes(versions, clock):
    publish(versions, {"OwnerMap": {"kim": "acc-1"}})
    publish(versions, {"OwnerMap": {"kim": None}})
    publish(versions, {"ExceptionRules": []})
    cache, _ = in_effect(versions, clock)
    now = cache.get()
    assert (now.version, now.pointer, sorted(now.refused)) == (1, 3, [2, 3])
    assert now.settings.owner_map == {"kim": "acc-1"}


def test_with_no_version_that_passes_the_parameters_route(versions, clock):
    publish(versions, {"OwnerMap": []})
    cache, _ = in_effect(versions, clock, {"OWNER_MAP": '{"*": "acc-param"}'})
    assert cache.get().settings.owner_map == {"*": "acc-param"} and cache.get().version is None


def test_without_a_store_or_an_import_it_is_the_parameters_exactly(versions, clock):
    env = {"OWNER_MAP": '{"kim": "acc-1"}', "PRIORITY_TABLE": '{"otherwise": "Low"}'}
    assert in_effect(None, clock, env)[0].get().settings == Settings.from_env({**BASE, **env})
    assert in_effect(versions, clock, env)[0].get().settings == Settings.from_env({**BASE, **env})


def test_a_parameter_change_is_picked_up_and_a_bad_one_keeps_the_last_good(clock):
    cache, environment = in_effect(None, clock, {"OWNER_MAP": '{"kim": "acc-1"}'})
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    environment["value"] = dict(BASE, OWNER_MAP='{"kim": "acc-2"}')
    clock.advance(61)
    assert cache.get().settings.owner_map == {"kim": "acc-2"}
    environment["value"] = dict(BASE, OWNER_MAP='{"kim": 3}')
    clock.advance(61)
    assert cache.get().settings.owner_map == {"kim": "acc-2"} and cache.refusals == 1


def test_a_bad_parameter_fails_the_cold_start_naming_itself(clock):
    with pytest.raises(ConfigurationError, match=r"OwnerMap \(OWNER_MAP\)"):
        in_effect(None, clock, {"OWNER_MAP": "null"})[0].get()


def test_an_unreadable_store_fails_a_cold_start_and_is_ridden_out_later(versions, clock, monkeypatch):
    publish(versions, {"OwnerMap": {"kim": "acc-1"}})
    cache, _ = in_effect(versions, clock)

    def throttled():
        raise TransientError("DynamoDB get_item on the tables: ThrottlingException")

    broken, _ = in_effect(versions, clock)
    monkeypatch.setattr(versions, "current", throttled)
    with pytest.raises(TransientError):
        broken.get()
    monkeypatch.undo()
    assert cache.get().settings.owner_map == {"kim": "acc-1"}
    monkeypatch.setattr(versions, "current", throttled)
    clock.advance(61)
    assert cache.get().settings.owner_map == {"kim": "acc-1"}


# --- the properties ----------------------------------------------------------------------------------------------------

TEXT = st.text(string.ascii_letters + string.digits + ".-_ é", min_size=1, max_size=12).filter(str.strip)
ACCOUNT = st.text(string.ascii_letters + string.digits + ":-_", min_size=1, max_size=30)
VALID = st.fixed_dictionaries({}, optional={
    "OwnerMap": st.dictionaries(TEXT, ACCOUNT, max_size=5),
    "VendorOwners": st.dictionaries(TEXT, TEXT, max_size=5),
    "RoundRobinAssignees": st.lists(ACCOUNT, max_size=4),
    "EscalationDays": st.dictionaries(st.sampled_from(["*", "rejected", "on-hold"]),
                                      st.lists(st.integers(1, 90), min_size=1, max_size=3), max_size=2),
    "ApproveActionNames": st.dictionaries(st.sampled_from(["Bill", "PurchaseOrder"]), TEXT, max_size=2),
    "PriorityTable": st.sampled_from([{}, {"otherwise": "Low"}, {"amountOver": None}, {"amountOver": 2500.5}]),
    "ExceptionRules": st.sampled_from([{}, {"Bill": {"validation": False}}, {"Check": {"add": ["Reserved"]}}]),
})
ANY_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                    max_size=3), max_leaves=8)
MAYBE_BROKEN = st.one_of(VALID, st.builds(lambda good, name, junk: {**good, name: junk}, VALID,
                                          st.sampled_from(list(TABLES) + ["NotATable"]), ANY_JSON))


def _accepted(document) -> bool:
    try:
        parse_document(document, "x")
        return True
    except ConfigurationError:
        return False


@given(document=VALID)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_accepted_document_round_trips_through_store_export_and_import(versions, document):
    info = publish(versions, document)
    stored = versions.load(info.number)
    exported = json.dumps(stored, indent=2, sort_keys=True, ensure_ascii=False)
    reimported = json.loads(exported)
    assert stored == document == reimported and digest(reimported) == info.digest
    assert parse_document(reimported, "export").keys() == document.keys()


@given(document=MAYBE_BROKEN)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_refused_document_leaves_the_current_version_unchanged(cli_stack, tmp_path_factory, document):
    """Through `connector config import` itself: a refusal is exit 2, one line, and the store is as it was."""
    main, versions, capsys = cli_stack
    before = (versions.current(), [vars(info) for info in versions.history()])
    path = tmp_path_factory.mktemp("doc") / "tables.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    capsys.readouterr()
    status = main(["config", "import", str(path)])
    err = capsys.readouterr().err
    if _accepted(document):
        assert status == 0, err
        assert versions.load(versions.current()) == document
    else:
        assert status == 2 and err.count("\n") == 1, err
        assert (versions.current(), [vars(info) for info in versions.history()]) == before


@pytest.fixture
def cli_stack(monkeypatch, capsys):
    """`connector config` on a moto account: the table from template.yaml, the environment of an operator shell."""
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="connector-cli", BillingMode="PAY_PER_REQUEST", **table_definition())
        for name, value in {**BASE, "TABLE_NAME": "connector-cli", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        for name in ("PARAMETER_TABLES_ARN", "AWS_ENDPOINT_URL", "JIRA_SECRET_ARN", *(t.variable for t in TABLES.values())):
            monkeypatch.delenv(name, raising=False)
        from connector_cli.main import main

        yield main, DynamoTableVersions(boto3.client("dynamodb", region_name="us-east-1"), "connector-cli"), capsys
