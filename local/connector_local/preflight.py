"""What ``connector local`` checks before it starts anything.

Starting the stack takes seconds and several processes; an input it cannot use (an environment file in a directory
that does not exist, a configuration value the functions would refuse at their cold start, a parameter
CloudFormation would refuse) used to be found only afterwards, with the stack half up, and each running part then
printed its own traceback on the way down. Everything the command can know in advance is checked here, first, and
refused in one ``ConfigurationError`` naming the input.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

from connector.config import Settings
from connector.errors import ConfigurationError

from .stack import PARAMETER_ENV, TEMPLATE, parameters_from_env

SANDBOX_STANDS_IN = {
    "AcumaticaUrl": "http://127.0.0.1:1",
    "JiraApiUrl": "http://127.0.0.1:2",
    "JiraAuthUrl": "http://127.0.0.1:2",
    "JiraProjectKey": "AP",
    "JiraExternalIdField": "customfield_10050",
}
"""What the sandboxes will provide, for checking the rest before they exist (their ports are chosen at start)."""


def check_local_inputs(env: Mapping[str, str], *, env_file: str | None, sample_data: bool) -> None:
    """Refuse, before anything starts, what ``connector local`` could not use."""
    if env_file:
        _check_writable(env_file)
    if sample_data and env.get("ACUMATICA_URL"):
        raise ConfigurationError("--sample-data seeds the Acumatica sandbox, but ACUMATICA_URL points elsewhere "
                                 f"({env['ACUMATICA_URL']}); unset it, or leave out --sample-data")
    for url, secret in (("ACUMATICA_URL", "ACUMATICA_SECRET_JSON"), ("JIRA_API_URL", "JIRA_SECRET_JSON")):
        if env.get(url):
            _check_secret_json(secret, env.get(secret))
    parameters = parameters_from_env(env, SANDBOX_STANDS_IN)
    _check_template_parameters(parameters)
    Settings.from_env({**{PARAMETER_ENV[name]: value for name, value in parameters.items()}, **{
        name: value for name, value in env.items() if value}})


def _check_writable(env_file: str) -> None:
    path = Path(env_file).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigurationError(f"--env-file {env_file}: is a directory; name a file to write the export lines to")
    if not folder.is_dir():
        raise ConfigurationError(f"--env-file {env_file}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigurationError(f"--env-file {env_file}: not writable by this user")


def _check_secret_json(name: str, value: str | None) -> None:
    if not value:
        raise ConfigurationError(f"{name} is needed when the matching URL points at a real system: the credentials "
                                 "as a JSON object (see docs/contract.md, Secrets)")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{name} is not JSON: {error.msg} at character {error.pos}") from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"{name} must be a JSON object of credential fields")


def _check_template_parameters(parameters: Mapping[str, str]) -> None:
    """The constraints CloudFormation enforces (``AllowedValues``, patterns, lengths), as the local AWS applies them
    when it creates the stack."""
    from cfnlint.decode import decode

    from .aws import _validated_parameters

    template, problems = decode(str(TEMPLATE))
    if template is None or problems:
        raise ConfigurationError(f"cannot read {TEMPLATE}: {'; '.join(str(p) for p in problems)}")
    try:
        _validated_parameters(template.get("Parameters", {}), parameters)
    except ConfigurationError as refused:  # name the variable the person set beside the parameter it feeds
        told = re.sub(r"\b(" + "|".join(map(re.escape, parameters)) + r")\b",
                      lambda match: f"{match.group(1)} ({PARAMETER_ENV.get(match.group(1), '?')})", str(refused))
        raise ConfigurationError(told) from None
