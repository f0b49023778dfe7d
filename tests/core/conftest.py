"""Core tests: the pure flows against in-memory Acumatica/Jira fakes and a moto DynamoDB table built from
template.yaml's own definition (one source of truth for the key schema and TTL)."""

from __future__ import annotations

import pytest
from cfnlint.decode import decode
from moto import mock_aws

from connector.store import DynamoStore
from tests.conftest import ROOT


class Clock:
    """Controllable wall clock (epoch seconds) for claims, leases and audit timestamps."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def table_definition() -> dict:
    template, errors = decode(str(ROOT / "template.yaml"))
    assert not errors, errors
    props = template["Resources"]["ConnectorTable"]["Properties"]
    return {"KeySchema": props["KeySchema"], "AttributeDefinitions": props["AttributeDefinitions"],
            "GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock):
    import boto3

    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        table = resource.create_table(TableName="connector-test", BillingMode="PAY_PER_REQUEST", **table_definition())
        yield DynamoStore(table, clock=clock)
