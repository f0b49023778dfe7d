"""`connector`: run the connector locally and operate a deployed one.

Commands work against the resources named by the environment (``TABLE_NAME``, ``WORK_QUEUE_URL``, ...), or against a
deployed stack's outputs with ``--stack NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Sequence

OUTPUT_ENV = {
    "TableName": "TABLE_NAME",
    "WorkQueueUrl": "WORK_QUEUE_URL",
    "DeadLetterQueueUrl": "DEAD_LETTER_QUEUE_URL",
    "AcumaticaSecretArn": "ACUMATICA_SECRET_ARN",
    "JiraSecretArn": "JIRA_SECRET_ARN",
}


def _environment(stack: str | None) -> dict[str, str]:
    """The process environment, completed with a deployed stack's outputs and parameters when ``--stack`` is given."""
    env = dict(os.environ)
    if stack:
        import boto3

        description = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        for output in description.get("Outputs", []):
            if output["OutputKey"] in OUTPUT_ENV:
                env.setdefault(OUTPUT_ENV[output["OutputKey"]], output["OutputValue"])
        from .stack import PARAMETER_ENV

        for parameter in description.get("Parameters", []):
            variable = PARAMETER_ENV.get(parameter["ParameterKey"])
            if variable and parameter.get("ParameterValue"):
                env.setdefault(variable, parameter["ParameterValue"])
    return env


def _wiring(args: argparse.Namespace):
    from connector.wiring import Wiring

    return Wiring(_environment(args.stack))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(verbose=args.verbose)


def cmd_local(args: argparse.Namespace) -> int:
    from .stack import LocalStack

    stop = threading.Event()
    with LocalStack.start() as stack:
        threads = [threading.Thread(target=stack.pump.run_forever, args=(stop,), daemon=True)]
        for name, ticker in stack.tickers.items():
            if args.poll_seconds and name == "PollerFunction":
                ticker.rate_seconds = args.poll_seconds
            threads.append(threading.Thread(target=ticker.run_forever, args=(stop,), daemon=True))
        for thread in threads:
            thread.start()
        print(f"AWS (moto):        {stack.aws.endpoint_url}")
        print(f"Webhook endpoint:  {stack.environment['WEBHOOK_URL']}")
        print(f"Push endpoint:     {stack.gateway.url}/acumatica/push")
        print(f"Acumatica:         {stack.environment['ACUMATICA_URL']}")
        print(f"Jira:              {stack.environment['JIRA_API_URL']}")
        for name, value in sorted(stack.aws.outputs.items()):
            print(f"{name + ':':<19}{value}")
        print("Serving; Ctrl-C (or SIGTERM) stops.", flush=True)
        # Explicit handlers: a process started in the background inherits an ignored SIGINT, and services are
        # stopped with SIGTERM anyway.
        for stopping_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping_signal, lambda *_: stop.set())
        while not stop.wait(timeout=0.5):
            pass
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    from connector.http import make_session

    wiring = _wiring(args)
    session = make_session()
    if args.system == "acumatica":
        secret = wiring.acumatica_secret.read()
        for name in ("client_id", "client_secret", "username", "password", "push_secret"):
            value = getattr(args, name, None)
            if value:
                secret[name] = value
        wiring.acumatica_tokens.update_secret(
            lambda current: {k: v for k, v in {**current, **secret}.items() if k not in ("access_token", "expires_at")})
        wiring.acumatica.check_endpoint_version()
        wiring.acumatica_tokens.access_token()
        print(f"Acumatica connected: Default/{wiring.settings.acumatica_endpoint_version} served, token stored.")
        return 0
    from connector.jira import exchange_authorization_code, resolve_cloud_id

    secret = wiring.jira_secret.read()
    for name in ("client_id", "client_secret", "webhook_secret"):
        if getattr(args, name, None):
            secret[name] = getattr(args, name)
    if not args.code:
        from urllib.parse import urlencode

        query = urlencode({"audience": "api.atlassian.com", "client_id": secret.get("client_id", ""),
                           "scope": "read:jira-work write:jira-work manage:jira-webhook offline_access",
                           "redirect_uri": args.redirect_uri, "state": os.urandom(8).hex(),
                           "response_type": "code", "prompt": "consent"})
        print(f"Open this URL, approve, then run again with --code <code>:\n"
              f"{wiring.settings.jira_auth_url}/authorize?{query}")
        wiring.jira_tokens.update_secret(lambda current: {**current, **secret})
        return 0
    tokens = exchange_authorization_code(wiring.settings.jira_auth_url, secret["client_id"], secret["client_secret"],
                                         args.code, args.redirect_uri, session)
    secret.update(tokens)
    site = args.site or wiring.settings.jira_site_url
    secret["cloud_id"] = resolve_cloud_id(wiring.settings.jira_api_url, tokens["access_token"], site, session)
    wiring.jira_tokens.update_secret(lambda current: {**current, **secret})
    print(f"Jira connected: cloudId {secret['cloud_id']} for {site}; refresh token stored.")
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    wiring = _wiring(args)
    settings = wiring.settings
    checks: list[tuple[str, Any]] = [
        ("Acumatica endpoint version", lambda: wiring.acumatica.check_endpoint_version()),
        ("Acumatica token", lambda: wiring.acumatica_tokens.access_token() and None),
        (f"Acumatica workflow action {settings.approve_action!r}", lambda: _has_action(wiring)),
        ("Jira token and cloudId", lambda: wiring.jira.myself() and None),
        (f"Jira project {settings.jira_project_key}", lambda: wiring.jira.project() and None),
        (f"Jira field {settings.jira_external_id_field}", lambda: _has_field(wiring)),
    ]
    failed = 0
    for name, check in checks:
        try:
            check()
            print(f"ok    {name}")
        except Exception as exc:  # noqa: BLE001 - report every check
            failed += 1
            print(f"FAIL  {name}: {exc}")
    return 1 if failed else 0


def _has_action(wiring) -> None:
    for entity in ("Bill", "PurchaseOrder"):
        if entity in wiring.settings.document_types:
            actions = wiring.acumatica.workflow_actions(entity)
            if wiring.settings.approve_action not in actions:
                raise LookupError(f"{entity} offers {actions}, not {wiring.settings.approve_action!r}")


def _has_field(wiring) -> None:
    if not wiring.jira.field_exists(wiring.settings.jira_external_id_field):
        raise LookupError("no such field")


def cmd_replay(args: argparse.Namespace) -> int:
    import boto3

    from connector.redrive import redrive_dead_letters

    env = _environment(args.stack)
    dlq, source = env.get("DEAD_LETTER_QUEUE_URL"), env.get("WORK_QUEUE_URL")
    if not dlq or not source:
        print("DEAD_LETTER_QUEUE_URL and WORK_QUEUE_URL are needed (or --stack)", file=sys.stderr)
        return 2

    def progress(moved: int, total: int) -> None:
        print(f"\rreplayed {moved}/{total}", end="", flush=True)

    result = redrive_dead_letters(boto3.client("sqs"), dlq, source, max_messages=args.max, progress=progress)
    print(f"\nmoved {result.moved}, failed {result.failed} ({result.method} redrive)")
    return 1 if result.failed else 0


def cmd_audit(args: argparse.Namespace) -> int:
    from connector.model import DocumentKey

    wiring = _wiring(args)
    try:
        key = DocumentKey.parse(args.external_id)
    except ValueError:  # a Jira issue key: the table maps each issue to its document
        found = wiring.store.document_for_issue(args.external_id)
        if found is None:
            print(f"{args.external_id} is neither an external id nor a known issue key", file=sys.stderr)
            return 2
        key = found
    trail = wiring.store.audit_trail(key)
    if args.json:
        print(json.dumps(trail, indent=2, default=str))
        return 0
    for record in trail:
        print(f"{record['at']}  {record['event']:<10} {record['outcome']:<16} {record.get('reason', '')}")
    if not trail:
        print("no audit records")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import boto3

    from connector.redrive import queue_depths

    wiring = _wiring(args)
    for entity in wiring.settings.document_types:
        cursor = wiring.store.get_cursor(entity)
        resume = f", pass in progress at $skip={cursor.skip}" if cursor.pass_from else ""
        print(f"{entity:<14} watermark {cursor.watermark.isoformat() if cursor.watermark else '(never polled)'}{resume}")
    urls = {"work queue": wiring.settings.work_queue_url, "dead-letter queue": wiring.settings.dead_letter_queue_url}
    depths = queue_depths(boto3.client("sqs"), [u for u in urls.values() if u])
    for name, url in urls.items():
        if url:
            d = depths[url]
            print(f"{name:<18} visible {d['ApproximateNumberOfMessages']}, "
                  f"in flight {d['ApproximateNumberOfMessagesNotVisible']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        if name not in ("demo", "local"):
            sub.add_argument("--stack", help="read resource names from this deployed CloudFormation stack")
        return sub

    demo = command("demo", cmd_demo, "run the round trip on the embedded local stack and print it")
    demo.add_argument("--verbose", action="store_true", help="also print the functions' JSON logs and metrics")
    local = command("local", cmd_local, "run the stack locally (sandboxes unless ACUMATICA_URL/JIRA_API_URL are set)")
    local.add_argument("--poll-seconds", type=int, help="poll this often instead of the template's PollSchedule")
    connect = command("connect", cmd_connect, "store credentials: Acumatica OAuth client, or Jira OAuth 3LO consent")
    connect.add_argument("system", choices=["acumatica", "jira"])
    for name in ("client-id", "client-secret", "username", "password", "push-secret", "webhook-secret", "code",
                 "site"):
        connect.add_argument(f"--{name}")
    connect.add_argument("--redirect-uri", default="http://localhost:8765/callback")
    command("ping", cmd_ping, "check both systems and the configuration end to end")
    replay = command("replay", cmd_replay, "move dead-lettered messages back to the work queue, with progress")
    replay.add_argument("--max", type=int, help="move at most this many messages")
    audit = command("audit", cmd_audit, "show the audit trail of one document")
    audit.add_argument("external_id", help="the document's external id (e.g. Bill:Bill:000123) or its issue key")
    audit.add_argument("--json", action="store_true")
    command("status", cmd_status, "watermarks, and work queue and DLQ depths")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
