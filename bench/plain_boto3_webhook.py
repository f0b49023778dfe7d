"""The yardstick of the cold webhook request: a plain-boto3 handler doing the same honest work as WebhookFunction.

It reads the Jira secret, verifies ``X-Hub-Signature`` over the raw body (constant time), parses the delivery, makes
one conditional put on the delivery id (the once-per-delivery guarantee) and one FIFO send, and answers 202. It has
no logging, metrics, tracing, routing, validation of the issue shape or audit record: whatever the connector's
handler costs beyond this is what its libraries and its extra work cost. ``bench.coldstart`` runs it in a fresh
interpreter beside the real handler, against the same moto server; it is never deployed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import boto3

secrets = boto3.client("secretsmanager")
dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")


def handler(event: dict, context: object) -> dict:
    raw = event["body"].encode("utf-8")
    headers = event["headers"]
    secret = json.loads(secrets.get_secret_value(SecretId=os.environ["JIRA_SECRET_ARN"])["SecretString"])
    expected = "sha256=" + hmac.new(secret["webhook_secret"].encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-hub-signature", "")):
        return {"statusCode": 401, "body": "{}"}
    payload = json.loads(raw)
    delivery = headers["x-atlassian-webhook-identifier"]
    try:
        dynamodb.put_item(TableName=os.environ["TABLE_NAME"],
                          Item={"PK": {"S": "PLAIN#deliveries"}, "SK": {"S": delivery}},
                          ConditionExpression="attribute_not_exists(PK)")
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return {"statusCode": 200, "body": '{"status": "duplicate"}'}
    issue = payload["issue"]["key"]
    sqs.send_message(QueueUrl=os.environ["WORK_QUEUE_URL"], MessageBody=json.dumps({"issue": issue}),
                     MessageGroupId=issue, MessageDeduplicationId=delivery)
    return {"statusCode": 202, "body": '{"status": "queued"}'}
