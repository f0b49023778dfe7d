"""Secrets never reach logs, audit records or queue messages, even at DEBUG and across token refreshes."""

from __future__ import annotations

import io
import json
import logging

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from connector_local.stack import LocalStack


def _secret_values(stack) -> set[str]:
    client = stack.aws.client("secretsmanager")
    values: set[str] = set()
    for output in ("AcumaticaSecretArn", "JiraSecretArn", "WebhookSecretArn"):
        secret = json.loads(client.get_secret_value(SecretId=stack.aws.outputs[output])["SecretString"])
        values.update(str(v) for k, v in secret.items()
                      if k in ("client_secret", "password", "access_token", "refresh_token", "webhook_secret",
                               "push_secret") and v)
    return values


def test_no_secret_appears_in_logs_audit_or_messages(capfd):
    # Every log record, formatted as in Lambda (Powertools JSON, extra keys included), from the handlers' logger and
    # from the library's loggers; prints (EMF metrics) are caught by capfd.
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(LambdaPowertoolsFormatter())
    loggers = [logging.getLogger("connector"), logging.getLogger("acumatica-jira-connector")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        with LocalStack.start({"LOG_LEVEL": "DEBUG"}) as stack:
            _exercise_and_check(stack, capfd, buffer)
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _exercise_and_check(stack, capfd, buffer):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="300001", Vendor="V1", Amount=4, Balance=4,
                                 Hold=True)
    seen = set(_secret_values(stack))
    stack.tick("PollerFunction")
    seen |= _secret_values(stack)
    stack.drain()
    stack.acumatica.expire_access_tokens()  # force a refresh: new tokens are written back, never logged
    (issue,) = stack.jira.issues_with_external_id("Bill:Bill:300001")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    stack.tick("MaintenanceFunction")
    seen |= _secret_values(stack)
    output = capfd.readouterr()
    logs = output.out + output.err + buffer.getvalue()
    assert "Bill:Bill:300001" in logs  # the logs were captured at all
    audit = json.dumps(stack.aws.client("dynamodb").scan(TableName=stack.aws.outputs["TableName"])["Items"])
    assert len(seen) >= 6
    for value in seen:
        assert value not in logs
        assert value not in audit
