"""`connector`: run the connector locally and operate a deployed one.

The operator commands work against the resources the environment names (``TABLE_NAME``, ``WORK_QUEUE_URL``, ...: the
file ``connector local --env-file`` writes), or against a deployed stack's outputs with ``--stack NAME``; they run
with short timeouts (``reach``), so each answers within ``timings.OPERATOR_ANSWER_SECONDS`` whatever is down.
Arguments are read by ``arguments``: errors are one line and exit 2, like configuration errors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Mapping, Sequence

OUTPUT_ENV = {
    "TableName": "TABLE_NAME",
    "WorkQueueUrl": "WORK_QUEUE_URL",
    "DeadLetterQueueUrl": "DEAD_LETTER_QUEUE_URL",
    "AcumaticaSecretArn": "ACUMATICA_SECRET_ARN",
    "JiraSecretArn": "JIRA_SECRET_ARN",
    "WebhookSecretArn": "WEBHOOK_SECRET_ARN",
}


def _environment(stack: str | None) -> dict[str, str]:
    """The process environment, completed with a deployed stack's outputs and parameters when ``--stack`` is given.

    The named stack's resource names replace any the shell holds: a ``TABLE_NAME`` left exported from another stack
    would otherwise have the command read one stack's secrets and act on another's table and queues. A parameter the
    shell sets still wins over the stack's, so a table can be tried first (``OWNER_MAP=... connector preview
    --stack NAME``)."""
    env = dict(os.environ)
    if stack:
        import boto3

        description = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        for output in description.get("Outputs", []):
            if output["OutputKey"] in OUTPUT_ENV:
                env[OUTPUT_ENV[output["OutputKey"]]] = output["OutputValue"]
        from connector_local.stack import PARAMETER_ENV

        for parameter in description.get("Parameters", []):
            variable = PARAMETER_ENV.get(parameter["ParameterKey"])
            if variable and parameter.get("ParameterValue"):
                env.setdefault(variable, parameter["ParameterValue"])
    return env


def _wiring(args: argparse.Namespace):
    from .reach import OperatorWiring

    return OperatorWiring(_environment(args.stack))


def cmd_demo(args: argparse.Namespace) -> int:
    from connector_local.demo import run_demo

    return run_demo(verbose=args.verbose)


def cmd_local(args: argparse.Namespace) -> int:
    from connector_local.demo import DEMO_ENV, SEEDS
    from connector_local.preflight import check_local_inputs
    from connector_local.stack import LocalStack

    # The sample documents come with the demo's owner map (the buyer of PO000045), unless the shell sets its own.
    env = {**DEMO_ENV, **os.environ} if args.sample_data else dict(os.environ)
    check_local_inputs(env, env_file=args.env_file, sample_data=args.sample_data)
    stop = threading.Event()
    with LocalStack.start(env, containers=True, worker_concurrency=None) as stack:
        if args.sample_data:
            assert stack.acumatica  # check_local_inputs refused ACUMATICA_URL with --sample-data
            for seed in SEEDS:
                stack.acumatica.add_document(seed.entity, requires_approval=seed.requires_approval, **seed.fields)
            # One poll now, so the seeded exceptions have their issues before the first command is typed.
            stack.tick("PollerFunction")
            stack.drain()
        threads = [threading.Thread(target=stack.pump.run_forever, args=(stop,), daemon=True)]
        for name, ticker in stack.tickers.items():
            if args.poll_seconds and name == "PollerFunction":
                ticker.rate_seconds = args.poll_seconds
            threads.append(threading.Thread(target=ticker.run_forever, args=(stop,), daemon=True))
        print(f"AWS (moto):        {stack.aws.endpoint_url}")
        print(f"Webhook endpoint:  {stack.environment['WEBHOOK_URL']}")
        print(f"Push endpoint:     {stack.gateway.url}/acumatica/push")
        print(f"Acumatica:         {stack.environment['ACUMATICA_URL']}")
        print(f"Jira:              {stack.environment['JIRA_API_URL']}")
        for name, value in sorted(stack.aws.outputs.items()):
            print(f"{name + ':':<19}{value}")
        if args.sample_data and stack.jira:
            issues = sum(len(stack.jira.issues_with_external_id(seed_key)) for seed_key in _seed_ids(SEEDS))
            print(f"Sample data:       {len(SEEDS)} documents seeded and polled once; {issues} Jira issues")
        exports = operator_exports(stack.environment)
        if args.env_file:
            with open(args.env_file, "w", encoding="utf-8") as env_file:
                env_file.write(exports)
            sourced = args.env_file if "/" in args.env_file else f"./{args.env_file}"  # `.` searches PATH otherwise
            print(f"Operator environment written to {args.env_file}: `. {sourced}` in another shell, then "
                  "`connector status`, `audit`, `replay` and `ping` act on this stack.")
        else:
            print("In another shell, run this block; then `connector status`, `audit`, `replay` and `ping` act on "
                  "this stack:")
            print(exports, end="")
        # Explicit handlers: a process started in the background inherits an ignored SIGINT, and services are
        # stopped with SIGTERM anyway.
        for stopping_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping_signal, lambda *_: stop.set())
        for thread in threads:
            thread.start()
        print("Serving; Ctrl-C (or SIGTERM) stops.", flush=True)
        try:
            while not stop.wait(timeout=0.5):
                pass
        finally:  # the pump and the tickers finish what they are doing before the stack under them stops
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    return 0


def _seed_ids(seeds) -> list[str]:
    from connector.documents import profile

    return [profile(seed.entity).key_of(seed.fields).external_id for seed in seeds]


def operator_exports(environment: Mapping[str, str]) -> str:
    """A shell block that points the operator commands at a running local stack.

    Credentials given as JSON in the environment stay out of it: the block is meant to be pasted and shared.
    """
    import shlex

    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(environment.items())
             if not name.endswith("_SECRET_JSON")]
    return "\n".join(lines) + "\n"


def choose_jira_site(sites: Sequence[Mapping[str, Any]]) -> str:
    """A person picks the site from a numbered list; a script (stdin not a terminal) must name it with ``--site``."""
    from connector.errors import ConfigurationError

    from .output import print_table

    ordered = sorted(sites, key=lambda site: str(site.get("url")))
    urls = ", ".join(str(site.get("url")) for site in ordered)
    if not sys.stdin.isatty():
        raise ConfigurationError(f"this authorisation reaches several Jira sites ({urls}); the code is spent, so "
                                 "run `connector connect jira` again with --site <url>")
    print_table(("#", "site", "name"), [(n, site.get("url"), site.get("name", "")) for n, site in
                                        enumerate(ordered, 1)], title="This authorisation reaches several Jira sites:")
    while True:
        try:
            answer = input(f"Which one should the connector use? [1-{len(ordered)}]: ").strip()
        except EOFError:
            raise ConfigurationError(f"no Jira site chosen among {urls}; run again with --site <url>") from None
        if answer.isdigit() and 1 <= int(answer) <= len(ordered):
            return str(ordered[int(answer) - 1]["url"])
        print(f"Answer with a number from 1 to {len(ordered)}.")


def cmd_connect(args: argparse.Namespace) -> int:
    from connector.http import make_session

    from . import connect

    wiring = _wiring(args)
    session = make_session()
    given = {name: value for name, value in {
        "client_id": args.client_id, "username": args.username,
        **{name: connect.secret_value(name.replace("_", "-"), getattr(args, name)) for name in connect.SECRET_OPTIONS},
    }.items() if value}
    chosen, generated = connect.chosen_secrets(given, args.generate or (), args.clear or (), args.system)
    given.update(chosen)
    for name, value in generated.items():  # the sender needs it too; shown once, never logged
        print(f"Generated {name}: {value}\n  set it where the sender signs with it (see docs/security.md)")
    if args.system == "acumatica":
        from connector.acumatica import acumatica_token_obtainer

        print(connect.connect_acumatica(wiring, given, acumatica_token_obtainer(wiring.settings.acumatica_url,
                                                                                 session)))
        _copy_verification_material(wiring)
        return 0
    from connector.jira import accessible_sites, exchange_authorization_code

    code, state = args.code, args.state
    if "webhook_secret" in given:
        connect.store_webhook_secret(wiring, given["webhook_secret"])
        _copy_verification_material(wiring)
        if not code and not (given.keys() & {"client_id", "client_secret"}):
            print("Jira webhook secret cleared; X-Hub-Signature deliveries are refused now." if not
                  given["webhook_secret"] else
                  "Jira webhook secret stored; the webhook function verifies X-Hub-Signature with it now.")
            return 0
    if not code:
        url = connect.consent_url(wiring, given, args.redirect_uri)
        if not args.listen:
            print(f"Open this URL, approve, then run again with --code <code> --state <state> from the redirect "
                  f"(or use --listen to catch it):\n{url}")
            return 0
        print(f"Open this URL and approve; waiting for the redirect on {args.redirect_uri}:\n{url}", flush=True)
        code, state = connect.catch_redirect(args.redirect_uri)
    site = args.site or wiring.settings.jira_site_url
    print(connect.finish_jira(wiring, code, state or "", site, exchange_authorization_code, accessible_sites,
                              choose_jira_site, session))
    _copy_verification_material(wiring)
    return 0


def _copy_verification_material(wiring) -> None:
    """The webhook function reads only its own secret: make its copy equal the two credential secrets, the way the
    maintenance run does (a secret cleared at its source is cleared in the copy too)."""
    from connector.maintenance import copy_verification_material

    copy_verification_material(wiring.jira_secret, wiring.acumatica_secret, wiring.webhook_secret)


def cmd_ping(args: argparse.Namespace) -> int:
    """The end-to-end checklist (``ping``): every check makes its own call, all within the tool's deadline."""
    from . import ping

    from .reach import OperatorWiring

    env = _environment(args.stack)
    return ping.run(OperatorWiring(env), env, args.format)


def cmd_replay(args: argparse.Namespace) -> int:
    import boto3

    from connector.queue import group_token
    from connector.redrive import list_dead_letters, redrive_dead_letters

    from .output import StatusLine, print_line, print_table

    env = _environment(args.stack)
    dlq, source = env.get("DEAD_LETTER_QUEUE_URL"), env.get("WORK_QUEUE_URL")
    if not dlq or not source:
        from connector.errors import ConfigurationError

        raise ConfigurationError("DEAD_LETTER_QUEUE_URL and WORK_QUEUE_URL are needed: run with --stack <stack>, or "
                                 "load the environment file of the running `connector local`")
    group = group_token(args.external_id) if args.external_id else None
    sqs = boto3.client("sqs")
    if args.dry_run:
        from datetime import datetime, timezone

        waiting = [d for d in list_dead_letters(sqs, dlq, max_messages=args.max) if group in (None, d.group)]
        rows = []
        for letter in waiting:
            try:
                body = json.loads(letter.body)
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            rows.append({"sent": datetime.fromtimestamp(letter.sent_at, timezone.utc).isoformat(timespec="seconds"),
                         "document": str(body.get("external_id") or letter.group or "-"),
                         "kind": str(body.get("kind") or "?"), "issue": str(body.get("issue_key") or "-"),
                         "receives": letter.receive_count, "reason": str(body.get("reason") or "")})
        if args.format == "json":
            print(json.dumps({"would_replay": rows, "moved": 0}, indent=2))
            return 0
        print_table(("sent", "document", "kind", "issue", "receives", "reason"), [tuple(r.values()) for r in rows],
                    title=f"{len(rows)} message(s) would be replayed; nothing was moved")
        return 0

    with StatusLine(sys.stderr, "replaying the dead-letter queue") as status:
        result = redrive_dead_letters(sqs, dlq, source, max_messages=args.max, only_group=group,
                                      progress=lambda done, total: status.update(f"replayed {done}/{total}"))
    if args.format == "json":
        print(json.dumps({"moved": result.moved, "failed": result.failed, "method": result.method,
                          "why": result.why}, indent=2))
    else:
        print_line(f"moved {result.moved}, failed {result.failed}: {_replay_in_words(result)}")
    return 1 if result.failed else 0


def _replay_in_words(result) -> str:
    """What ``replay`` did, for a person: which mechanism, why, and what a failure means."""
    if not result.moved and not result.failed:
        return "nothing was waiting in the dead-letter queue."
    if result.method == "native":
        told = ("SQS's own message move task (StartMessageMoveTask) moved the dead-letter queue's messages back to "
                "the work queue")
    else:
        told = (f"each message was copied from the dead-letter queue to the work queue with a fresh deduplication "
                f"id, then deleted from the dead-letter queue, because {result.why}")
    if result.failed:
        told += ("; the ones that failed are still in the dead-letter queue (`connector replay --dry-run` lists "
                 "them)")
    return told + "."


def cmd_audit(args: argparse.Namespace) -> int:
    from connector.model import DocumentKey

    from .arguments import Refused

    wiring = _wiring(args)
    if ":" in args.external_id:
        key = DocumentKey.parse(args.external_id)
    else:  # an issue key (already upper case, as Jira writes it): the table maps it to its document
        found = wiring.store.document_for_issue(args.external_id)
        if found is None:
            raise Refused(f"{args.external_id} is not an issue of this stack's documents (give the document's "
                          "external id, e.g. Bill:Bill:000123)")
        key = found
    trail = wiring.store.audit_trail(key)
    if not trail and wiring.store.get_state(key) is None:
        raise Refused(f"no record of {key.external_id}: the connector has never queued or touched it")
    if args.format == "json":
        print(json.dumps(trail, indent=2, default=str))
        return 0
    from .output import print_table

    print_table(("at", "issue", "event", "outcome", "reason", "decided"),
                [(r["at"], (r.get("details") or {}).get("issue") or "-", r["event"], r["outcome"], r.get("reason", ""),
                  (r.get("details") or {}).get("authority") or "") for r in trail],
                title=f"audit trail of {key.external_id}")
    return 0


def _age(moment: Any, now: Any) -> str:
    """``3h 12m ago`` for people; the exact value stays in ``--format json``."""
    if moment is None:
        return "-"
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return f"in {-seconds // 60}m"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return (f"{days}d {hours}h ago" if days else f"{hours}h {rest // 60}m ago" if hours else f"{rest // 60}m ago")


def cmd_status(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    import boto3

    from connector.redrive import queue_depths

    wiring = _wiring(args)
    now = datetime.now(timezone.utc)
    entities = []
    for entity in wiring.settings.document_types:
        cursor = wiring.store.get_cursor(entity)
        entities.append({
            "entity": entity,
            "watermark": cursor.watermark_text,  # as Acumatica rendered it
            "newest_change_age": _age(cursor.watermark, now) if cursor.watermark else "never polled",
            "pass_in_progress": bool(cursor.pass_from),
            "resume_skip": cursor.skip if cursor.pass_from else None,
        })
    urls = {"work queue": wiring.settings.work_queue_url, "dead-letter queue": wiring.settings.dead_letter_queue_url}
    depths = queue_depths(boto3.client("sqs"), [u for u in urls.values() if u])
    queues = [{"queue": name, "visible": depths[url]["ApproximateNumberOfMessages"],
               "in_flight": depths[url]["ApproximateNumberOfMessagesNotVisible"]} for name, url in urls.items() if url]
    expires = wiring.jira_secret.read().get("webhook_expires_at") if wiring.settings.jira_secret_id else None
    webhook = {"expires_at": expires,
               "days_left": (datetime.fromisoformat(expires) - now).days if expires else None}
    sweep = _sweep_status(wiring, now)
    if args.format == "json":
        print(json.dumps({"entities": entities, "queues": queues, "jira_webhook": webhook, "resolution_sweep": sweep},
                         indent=2))
        return 0
    from .output import print_table

    print_table(("entity", "watermark (as Acumatica wrote it)", "age on this clock", "pass in progress"),
                [(e["entity"], e["watermark"] or "(never polled)", e["newest_change_age"],
                  f"yes, resumes at $skip={e['resume_skip']}" if e["pass_in_progress"] else "no") for e in entities])
    print_table(("queue", "visible", "in flight"), [(q["queue"], q["visible"], q["in_flight"]) for q in queues])
    print("Jira dynamic webhook: " + (f"expires {expires} ({webhook['days_left']} days left)" if expires
                                       else "not registered by maintenance yet (or an admin webhook is used)"))
    print(f"Resolution sweep: last ran {sweep['last_ran_age']}; resolutions it found that no delivery announced: "
          f"{sweep['undelivered']}" + (f" (last {sweep['last_undelivered_issue']}, {sweep['last_undelivered_age']})"
                                       if sweep["undelivered"] else ""))
    return 0


def _sweep_status(wiring, now) -> dict[str, Any]:
    """When the resolution sweep last ran, and how many resolutions it brought that no webhook delivery announced
    (a count above 0 means deliveries are being lost: see the UndeliveredResolutions alarm)."""
    from datetime import datetime, timezone

    from connector.maintenance import SWEEP_CURSOR

    cursor = wiring.store.get_cursor(SWEEP_CURSOR)
    missed = wiring.store.undelivered_resolutions()
    last = datetime.fromtimestamp(missed["last_at"], timezone.utc) if missed["last_at"] else None
    return {"last_ran": cursor.watermark_text, "last_ran_age": _age(cursor.watermark, now),
            "undelivered": missed["count"], "last_undelivered_issue": missed["last_issue"],
            "last_undelivered_at": last.isoformat() if last else None, "last_undelivered_age": _age(last, now)}


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Act as a person in the Jira sandbox of a running `connector local` (JIRA_API_URL from its export block)."""
    from .reach import OperatorWiring
    from .sandbox import resolve

    return resolve(os.environ, OperatorWiring(dict(os.environ)), args.document, status=args.status,
                   resolution=args.resolution, wait_seconds=args.wait, fmt=args.format)


def cmd_preview(args: argparse.Namespace) -> int:
    from .preview import run

    return run(_wiring(args), entities=args.entity, since=args.since, limit=args.limit, fmt=args.format)


DESCRIPTION = """\
Run the connector locally, and operate a deployed one.

  connector demo                      the round trip on an embedded stack, printed step by step
  connector local --sample-data --env-file .local.env
                                      the stack on this machine, until stopped; `. ./.local.env` in another shell
  connector ping | status | audit | replay | preview
                                      operate the stack the environment (or --stack NAME) points at

Every command has --help. Argument and configuration errors are one line, exit status 2; --debug (anywhere on the
line) shows the traceback of an error instead.
"""


def build_parser() -> argparse.ArgumentParser:
    from .arguments import HelpFormatter, OneLineParser, add_format, at_least, document_or_issue, external_id, moment

    parser = OneLineParser(prog="connector", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        sub.set_defaults(handler=handler)
        # Also after the command name; SUPPRESS keeps an absent one from overwriting one given before it.
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error")
        if name not in ("demo", "local", "sandbox"):
            sub.add_argument("--stack", help="read resource names from this deployed CloudFormation stack "
                                             "(default: the environment, e.g. the file `connector local` writes)")
        return sub

    demo = command("demo", cmd_demo, "run the round trip on the embedded local stack and print it")
    demo.add_argument("--verbose", action="store_true", help="also print the functions' JSON logs and metrics")
    local = command("local", cmd_local, "run the stack locally (sandboxes unless ACUMATICA_URL/JIRA_API_URL are set)")
    local.add_argument("--poll-seconds", type=at_least(1),
                       help="poll this often instead of the template's PollSchedule (default: PollSchedule)")
    local.add_argument("--sample-data", action="store_true",
                       help="seed the Acumatica sandbox with the demo's bills, purchase orders and payments, and "
                            "poll them once before serving")
    local.add_argument("--env-file", help="write the operator environment (export lines) to this file "
                                          "(default: print them)")
    connect = command("connect", cmd_connect, "store credentials: Acumatica OAuth client, or Jira OAuth 3LO consent")
    connect.epilog = ("Secrets are never values on the command line (ps, shell history): a secret option alone asks "
                      "for it; '-' reads one line of standard input each, in the order client-secret, password, "
                      "push-secret, webhook-secret.")
    connect.add_argument("system", choices=["acumatica", "jira"],
                         help="acumatica: the OAuth client, API user and push secret; jira: the OAuth consent and "
                              "the admin webhook's secret")
    for name, help_text in (
            ("client-id", "the OAuth client id: Acumatica's connected application (GUID@Tenant) or the Jira app's "
                          "(default: keep the stored one)"),
            ("username", "acumatica: the API user the password grant signs in as (default: keep the stored one)"),
            ("code", "jira: the code from the consent redirect (default: none, start a consent)"),
            ("state", "jira: the state from the consent redirect (default: none)"),
            ("site", "jira: the https://<site>.atlassian.net to use when the consent reaches several "
                     "(default: JiraSiteUrl, else ask)")):
        connect.add_argument(f"--{name}", help=help_text)
    from .connect import MIN_CHOSEN_SECRET_BYTES, PROMPT, refuse_literal

    for name, help_text in (("client-secret", "the OAuth client secret"),
                            ("password", "acumatica: the API user's password"),
                            ("push-secret", f"acumatica: the push notifications' shared secret, at least "
                                            f"{MIN_CHOSEN_SECRET_BYTES} bytes"),
                            ("webhook-secret", f"jira: the admin webhook's secret, at least {MIN_CHOSEN_SECRET_BYTES} "
                                               "bytes")):
        connect.add_argument(f"--{name}", nargs="?", const=PROMPT, type=refuse_literal(f"--{name}"), metavar="-",
                             help=f"{help_text}; alone: asked for without echo; '-': one line of standard input "
                                  "(default: keep the stored one)")
    connect.add_argument("--generate", action="append", choices=["push-secret", "webhook-secret"],
                         help="make a random 32-byte secret, store it and print it once, to set on the sender "
                              "(default: none)")
    connect.add_argument("--clear", action="append", choices=["push-secret", "webhook-secret"],
                         help="empty the secret at its source and in the webhook function's copy: deliveries "
                              "signed with it are refused from then on (default: none)")
    connect.add_argument("--redirect-uri", default="http://localhost:8765/callback",
                         help="jira: the OAuth callback registered in the Jira app (default: %(default)s)")
    connect.add_argument("--listen", action="store_true",
                         help="jira: catch the consent redirect on the --redirect-uri port of 127.0.0.1 "
                              "(default: print the URL and wait for --code and --state)")
    ping = command("ping", cmd_ping, "check both systems and the configuration end to end")
    add_format(ping)
    replay = command("replay", cmd_replay, "move dead-lettered messages back to the work queue")
    replay.add_argument("--max", type=at_least(1), help="move at most this many messages (default: all)")
    replay.add_argument("--external-id", type=external_id,
                        help="replay only this document's messages, e.g. Bill:Bill:000123 (default: every document)")
    replay.add_argument("--dry-run", action="store_true", help="list what waits in the DLQ; move nothing")
    add_format(replay)
    audit = command("audit", cmd_audit, "show the audit trail of one document")
    audit.add_argument("external_id", type=document_or_issue, metavar="DOCUMENT",
                       help="the document's external id (e.g. Bill:Bill:000123) or its Jira issue key (e.g. AP-12)")
    add_format(audit)
    audit.add_argument("--json", action="store_const", dest="format", const="json", help="the same as --format json")
    sandbox = command("sandbox", cmd_sandbox, "act as a person in the local Jira sandbox (connector local)")
    sandbox.add_argument("action", choices=["resolve"], help="resolve: move the issue to --status, as a person")
    sandbox.add_argument("document", type=document_or_issue, metavar="DOCUMENT",
                         help="the document whose issue to move (e.g. Bill:Bill:000101), or the issue key (AP-1)")
    sandbox.add_argument("--status", default="Done", help="the status a person moves the issue to")
    sandbox.add_argument("--resolution",
                         help="the resolution the person picks, e.g. \"Won't Do\" (a no; default: the status's own)")
    sandbox.add_argument("--wait", type=at_least(0), default=30, metavar="SECONDS",
                         help="wait this long for the connector's decision, and print it (0: do not wait)")
    add_format(sandbox)
    status = command("status", cmd_status, "watermarks, and work queue and DLQ depths")
    add_format(status)
    preview = command("preview", cmd_preview, "list the issues a poll would create, update or leave; writes nothing")
    preview.add_argument("--entity", action="append", choices=["Bill", "PurchaseOrder", "Check"],
                         help="only this entity; repeat for several (default: DocumentTypes)")
    preview.add_argument("--since", type=moment,
                         help="only documents modified since this ISO date or date-time, e.g. 2026-11-01 "
                              "(default: all)")
    preview.add_argument("--limit", type=at_least(1), help="list at most this many documents (default: all)")
    add_format(preview)
    from .config_cmd import add_config_command

    add_config_command(command)
    return parser


OPERATOR_COMMANDS = frozenset({"connect", "ping", "replay", "audit", "sandbox", "status", "preview", "config"})
"""Commands that call a running stack: they run with the tool's short timeouts (``demo`` and ``local`` run the
functions themselves, with the functions' own)."""


def _one_line(error: BaseException) -> tuple[str, int]:
    """What a person can act on, and the exit status: 2 for configuration, 1 for a failure of the systems.

    A host that gave no answer is named with the setting that points at it; nothing here prints a Python type name."""
    from botocore.exceptions import BotoCoreError, ClientError

    from connector.errors import ConfigurationError

    from .output import clean
    from .ping import _aws_fix, describe
    from .reach import unreachable

    from .arguments import Refused

    if isinstance(error, ConfigurationError):
        return f"configuration error: {clean(error)}", 2
    if isinstance(error, Refused):
        return clean(error), 2
    why = unreachable(error, os.environ)
    if why is not None:
        return f"{why.message}; fix: {why.fix}", 1
    if isinstance(error, (ClientError, BotoCoreError)):
        fix = _aws_fix(error)
        return f"{describe(error) if isinstance(error, ClientError) else 'AWS: ' + clean(error)}" + (
            f"; {fix}" if fix else ""), 1
    return describe(error), 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors become one line on stderr (``--debug`` shows the traceback), never a stack dump."""
    args = build_parser().parse_args(argv)
    from .reach import use_operator_timeouts

    try:
        if args.command in OPERATOR_COMMANDS:
            with use_operator_timeouts():
                return int(args.handler(args) or 0)
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # `connector audit ... | head`: the reader left; end quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence of a command-line tool
        if args.debug:
            raise
        line, status = _one_line(error)
        print(f"connector {args.command}: {line}", file=sys.stderr)
        return status
