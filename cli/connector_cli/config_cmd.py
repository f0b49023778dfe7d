"""`connector config`: the routing and tuning tables as versioned data (docs/tables.md).

``import FILE`` validates the whole document with the tables' own validators (``connector.tables``) and, when Jira
answers, asks it whether every accountId exists; any problem is one line naming the table and the entry, exit 2, and
nothing changes. Otherwise the document becomes a new version, current at once (the functions route on it within
``TABLES_CACHE_SECONDS``), recorded with the AWS identity that imported it, and audited with its effect on routing.
``rollback N`` makes version N's document current again as a new version (history only grows, so "the version in
effect" only ever moves forward and the audit reads in order). ``show``, ``history`` and ``export`` only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from connector.errors import ConfigurationError, ConnectorError
from connector.tables import (TABLES, account_ids, apply_tables, describe_effect, digest, parse_document,
                              read_document, routing_effect)

from .arguments import add_format


def add_config_command(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Hook ``connector config`` and its actions into the CLI's parser (``command`` is ``build_parser``'s helper)."""
    config = command("config", run, "the routing and tuning tables: import, show, history, rollback, export")
    actions = config.add_subparsers(dest="action", required=True, metavar="{import,show,history,rollback,export}",
                                    help="what to do with the tables")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text, formatter_class=config.formatter_class)
        # Also after the action, as on every command; SUPPRESS keeps an absent one from overwriting one given before.
        sub.add_argument("--stack", default=argparse.SUPPRESS,
                         help="read resource names from this deployed CloudFormation stack")
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error")
        return sub

    imported = action("import", "validate a JSON document of tables and make it the current version")
    imported.add_argument("file", help="a JSON object whose keys are table names ('-' reads standard input)")
    for name in ("show", "history"):
        shown = action(name, {"show": "the tables in effect and where each comes from (parameter or version N)",
                              "history": "every version: number, when, who, which tables, its effect"}[name])
        add_format(shown)
    rollback = action("rollback", "make an earlier version's tables current again (as a new version)")
    rollback.add_argument("version", type=_version_number, help="the version whose tables to restore")
    exported = action("export", "write the current version's document, to keep in git and import again")
    exported.add_argument("--output", help="write to this file (default: standard output)")


def _version_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (1, 2, ...)")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from .main import _wiring

    wiring = _wiring(args)
    return {"import": _import, "show": _show, "history": _history, "rollback": _rollback,
            "export": _export}[args.action](wiring, args)


# --- import and rollback --------------------------------------------------------------------------------------------


def _import(wiring: Any, args: argparse.Namespace) -> int:
    source = "standard input" if args.file == "-" else Path(args.file).name
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}") from None
    document = read_document(text, source)
    return _make_current(wiring, document, source=source, action="import", rollback_of=None)


def _rollback(wiring: Any, args: argparse.Namespace) -> int:
    versions = wiring.table_versions
    if versions.info(args.version) is None:
        raise ConfigurationError(f"there is no tables version {args.version}; `connector config history` lists them")
    document = versions.load(args.version)
    parse_document(document, f"version {args.version} cannot be restored: its tables")
    return _make_current(wiring, document, source=f"version {args.version}", action="rollback",
                         rollback_of=args.version)


def _make_current(wiring: Any, document: Mapping[str, Any], *, source: str, action: str,
                  rollback_of: int | None) -> int:
    """Everything is checked before anything is written; then one new version, its pointer move, its audit."""
    from connector.table_store import VersionConflict

    now = wiring.in_effect()
    versions = wiring.table_versions
    current = now.pointer
    if current is not None and now.version == current and digest(now.document) == digest(document):
        print(f"unchanged: version {current} already holds these tables; nothing was stored")
        return 0
    after = apply_tables(now.parameters, parse_document(document, source))
    checked = _check_accounts(wiring, document, source)
    effect = routing_effect(now.settings, after)
    by = _caller()
    try:
        info = versions.publish(document, expected=current, by=by, action=action, effect=effect, source=source,
                                rollback_of=rollback_of)
    except VersionConflict as conflict:
        print(f"connector config {action}: {conflict}", file=sys.stderr)
        return 1
    versions.audit(f"config-{action}", outcome=f"version {info.number}", by=by, reason=describe_effect(effect),
                   details={"version": info.number, "previous": current, "source": source,
                            "tables": list(info.tables), **effect})
    if checked:
        print(checked)
    entries = ", ".join(f"{name} ({TABLES[name].size(document[name]):,} entries)" for name in sorted(document)) \
        or "no tables (every table from its parameter)"
    restored = f", restoring version {rollback_of}'s tables" if rollback_of is not None else ""
    print(f"version {info.number} is current{restored}: {entries}; the functions route on it within "
          f"{_cache_seconds()} s")
    print(f"routing: {describe_effect(effect)}")
    return 0


def _check_accounts(wiring: Any, document: Mapping[str, Any], source: str) -> str:
    """Ask Jira whether every accountId the document routes to exists and is active; a problem is a one-line
    ``ConfigurationError``. Jira out of reach (not connected, offline, refusing the scope) skips the check, said."""
    found = account_ids(document)
    unique = sorted({account for _, _, account in found})
    if not unique:
        return ""
    from botocore.exceptions import BotoCoreError, ClientError
    from requests import RequestException

    try:
        states = wiring.jira.account_states(unique)
    except (ConnectorError, RequestException, ClientError, BotoCoreError) as exc:  # Jira not askable: say so
        reason = str(exc) if isinstance(exc, ConnectorError) else "its credentials or its address cannot be read"
        print(f"connector config: Jira accountIds not checked ({len(unique):,}): Jira could not be asked: {reason}",
              file=sys.stderr)
        return ""
    for table, entry, account in found:
        if account not in states:
            more = len({a for _, _, a in found if a not in states}) - 1
            raise ConfigurationError(f"{source}: {table}: entry {entry}: Jira has no account {account}"
                                     + (f" ({more} more accountIds are unknown to Jira)" if more else ""))
        if not states[account]:
            raise ConfigurationError(f"{source}: {table}: entry {entry}: the Jira account {account} is deactivated; "
                                     "issues cannot be assigned to it")
    return f"checked {len(unique):,} Jira accountIds: all exist and are active"


def _caller() -> str:
    """Who imports: the AWS identity the writes are made with (what CloudTrail records too), not a typed name."""
    import boto3

    return str(boto3.client("sts").get_caller_identity()["Arn"])


def _cache_seconds() -> int:
    from connector.timings import TABLES_CACHE_SECONDS

    return int(TABLES_CACHE_SECONDS)


# --- reading --------------------------------------------------------------------------------------------------------


def _show(wiring: Any, args: argparse.Namespace) -> int:
    now = wiring.in_effect()
    parameters = wiring.parameters()
    tables = {}
    for name, table in TABLES.items():
        if name in now.document:
            source, value = f"version {now.version}", now.document[name]
        else:
            value = table.decode(parameters.get(table.variable))
            source = "default" if value == table.empty else f"parameter {name}"
        tables[name] = {"source": source, "entries": table.size(value), "value": value}
    if args.format == "json":
        print(json.dumps({"version": now.version, "current": now.pointer, "refused": now.refused, "tables": tables},
                         indent=2, ensure_ascii=False, default=str))
        return 0
    from .output import print_table

    print(_in_effect_line(wiring, now))
    print_table(("table", "from", "entries", "what it decides"),
                [(name, t["source"], f"{t['entries']:,}", TABLES[name].description) for name, t in tables.items()])
    return 0


def _in_effect_line(wiring: Any, now: Any) -> str:
    if not wiring.settings.table_name:
        return "TABLE_NAME is not set (nor --stack): imported versions were not read; these are the parameters"
    if now.pointer is None:
        return "no version imported: every table comes from its parameter (or its default)"
    info = wiring.table_versions.info(now.version) if now.version is not None else None
    if info is None:
        line = "no version passes validation: every table comes from its parameter"
    else:
        how = f"version {info.rollback_of} restored" if info.rollback_of is not None else f"{info.source} imported"
        line = (f"version {info.number} is in effect ({how} {info.at} by {info.by}); its tables override the "
                "parameters of the same name")
    if now.pointer != now.version:
        line += f"; version {now.pointer} is current but refused: {now.refused.get(now.pointer, 'unreadable')}"
    return line


def _history(wiring: Any, args: argparse.Namespace) -> int:
    versions = wiring.table_versions.history()
    current = wiring.table_versions.current()
    if args.format == "json":
        print(json.dumps([{**vars(info), "tables": list(info.tables), "current": info.number == current}
                          for info in versions], indent=2, ensure_ascii=False, default=str))
        return 0
    if not versions:
        print("no version imported yet: `connector config import FILE` makes the first")
        return 0
    from .output import print_table

    print_table(("version", "at", "by", "what", "tables", "routing"),
                [(f"{info.number}{' (current)' if info.number == current else ''}", info.at, info.by,
                  f"rollback to {info.rollback_of}" if info.rollback_of is not None else f"import {info.source}",
                  ", ".join(info.tables) or "(none)", describe_effect(info.effect)) for info in versions])
    return 0


def _export(wiring: Any, args: argparse.Namespace) -> int:
    now = wiring.in_effect()
    if now.pointer is not None and now.pointer != now.version:
        print(f"connector config export: version {now.pointer} is current but refused; exporting version "
              f"{now.version}, which the functions route on", file=sys.stderr)
    text = json.dumps(dict(now.document), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        what = f"version {now.version}" if now.version is not None else "no version (an empty document)"
        print(f"wrote {what} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
