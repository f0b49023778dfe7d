#!/usr/bin/env python3
"""``make audit``: pip-audit over the Lambda layer's locked versions, and never a silent pass.

pip-audit exits 0 when it could audit nothing (a mirror without vulnerability data, pypi.org or OSV unreachable): it
reports each such package as skipped. This wrapper says so loudly instead: a vulnerability fails the build; an audit
that could not be done is reported as NOT DONE with the reason, and fails only with ``--strict`` (CI machines that
reach only a package mirror cannot consult the vulnerability database).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "shared" / "requirements.lock"
"""The layer's exact versions (what ``sam build`` installs), so the audit judges what ships, with no resolution."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="fail when the audit could not be done")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pip_audit", "-r", str(LOCK), "--no-deps", "--require-hashes", "-f", "json",
               "--progress-spinner", "off"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"DEPENDENCY AUDIT NOT DONE: pip-audit could not reach its vulnerability database ({reason})")
        return 1 if args.strict else 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(f"VULNERABLE: {dependency['name']} {dependency.get('version', '')}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        return 1
    audited = len(dependencies) - len(skipped)
    if skipped:
        print(f"DEPENDENCY AUDIT NOT DONE for {len(skipped)} of {len(dependencies)} packages "
              "(the vulnerability database was not reachable from here, or the index has no vulnerability data):")
        for dependency in skipped:
            print(f"  {dependency['name']}: {dependency['skip_reason']}")
        if args.strict:
            return 1
    clean = ", no known vulnerabilities among them" if audited else ""
    print(f"dependency audit: {audited} of {len(dependencies)} packages audited{clean}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
