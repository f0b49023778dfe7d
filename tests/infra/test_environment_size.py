"""The template deploys whatever its parameters say: every function's environment stays within Lambda's 4 KB, and every
parameter value within CloudFormation's 4,096 bytes, at the worst case the parameters' constraints allow.

How Lambda counts: it measures the environment as the JSON text of the variables map. Its refusal says so: "Lambda was
unable to configure your environment variables because the environment variables you have provided exceeded the 4KB
limit. String measured: {"POWERTOOLS_LOGGER_LOG_EVENT":"true",...}" (quoted in
github.com/github-aws-runners/terraform-aws-github-runner/issues/3594), escapes included. So the worst case counted
here is that text in UTF-8, every value at its longest and made of the costliest characters its parameter admits: a
quote or a backslash costs two bytes once escaped, a control character six (``\\u0001``), a character outside ASCII
up to three (CloudFormation's ``MaxLength`` counts UTF-16 units, so a character outside the Basic Multilingual Plane
costs four bytes for two units). That is never less than the plain sum of names and values, so the limit holds however
a stand-in counts.

Nothing here names a parameter or a variable: the worst case is computed from template.yaml alone, so a parameter or a
variable added by any branch is held to the same budget (a String parameter that reaches an environment without a
``MaxLength`` fails, naming itself). Resources and pseudo parameters take realistic worst lengths: a 128-character
stack name, the longest region, partition and URL suffix, CloudFormation's generated physical names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_ENVIRONMENT_LIMIT = 4096
PARAMETER_VALUE_LIMIT = 4096

FUNCTION_NAME_LIMIT = 64
"""Lambda's longest function name: a generated one is cut to it."""
STACK_NAME = 128
REGION = len("ap-southeast-5")
"""The longest region names in service (ap-southeast-5, ap-northeast-3, us-isob-east-1) have 14 characters."""
PARTITION = len("aws-us-gov")
URL_SUFFIX = len("amazonaws.com.cn")
ACCOUNT_ID = 12
GENERATED_SUFFIX = 13
"""CloudFormation names a resource that has no explicit name ``<stack>-<logical id>-<13 random characters>``."""
SECRET_SUFFIX = 7
"""Secrets Manager appends ``-`` and six random characters to a secret's name in its ARN."""

PSEUDO = {"AWS::StackName": STACK_NAME, "AWS::Region": REGION, "AWS::Partition": PARTITION,
          "AWS::URLSuffix": URL_SUFFIX, "AWS::AccountId": ACCOUNT_ID}

CANDIDATES = [chr(code) for code in range(128)] + ["é", "€"]
"""Characters whose escaped UTF-8 cost covers every character: ASCII (quotes, backslashes and controls escape), a
two-byte and a three-byte one."""

_CATEGORIES = {name: re.compile(pattern) for name, pattern in {
    "CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s", "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}.items()}


def cost(text: str) -> int:
    """Bytes ``text`` takes inside the JSON Lambda measures (without its quotes)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def raw(text: str) -> int:
    """Bytes ``text`` takes as it is (a secret's value: nothing is escaped)."""
    return len(text.encode("utf-8"))


def _admits(nodes: Any, char: str) -> bool:
    """Whether some position of a parsed regular expression can hold ``char`` (Python's own regex parser)."""
    for op, argument in nodes:
        name = str(op)
        if name == "LITERAL" and char == chr(argument) or name == "NOT_LITERAL" and char != chr(argument):
            return True
        if name == "ANY" and char != "\n":
            return True
        if name == "CATEGORY" and _CATEGORIES[str(argument)].fullmatch(char):
            return True
        if name == "IN" and _in_class(argument, char):
            return True
        if name in ("MAX_REPEAT", "MIN_REPEAT") and argument[1] > 0 and _admits(argument[2], char):
            return True
        if name == "SUBPATTERN" and _admits(argument[3], char):
            return True
        if name == "BRANCH" and any(_admits(branch, char) for branch in argument[1]):
            return True
        if name not in ("LITERAL", "NOT_LITERAL", "ANY", "CATEGORY", "IN", "MAX_REPEAT", "MIN_REPEAT", "SUBPATTERN",
                        "BRANCH", "AT"):
            raise AssertionError(f"the worst-case check cannot read the regular expression construct {name}")
    return False


def _in_class(items: Any, char: str) -> bool:
    negated = bool(items) and str(items[0][0]) == "NEGATE"
    found = False
    for op, argument in items[1:] if negated else items:
        name = str(op)
        if name == "LITERAL":
            found |= char == chr(argument)
        elif name == "RANGE":
            found |= argument[0] <= ord(char) <= argument[1]
        elif name == "CATEGORY":
            found |= bool(_CATEGORIES[str(argument)].fullmatch(char))
        else:
            raise AssertionError(f"the worst-case check cannot read the character class item {name}")
    return found != negated


def worst_character(pattern: str | None, measure: Callable[[str], int] = cost) -> int:
    """The most bytes one character of a value matching ``pattern`` can cost (any character without a pattern)."""
    if pattern is None:
        return max(measure(char) for char in CANDIDATES)
    import re._parser as parser  # the parser ``re`` itself uses; stable across 3.11-3.13

    tree = parser.parse(pattern)
    admitted = [char for char in CANDIDATES if _admits(tree, char)]
    return max((measure(char) for char in admitted), default=0)


def parameter_worst(name: str, spec: dict[str, Any], measure: Callable[[str], int] = cost) -> int:
    """The costliest value ``name`` can take, as its constraints allow."""
    if "AllowedValues" in spec:
        return max(measure(str(value)) for value in spec["AllowedValues"])
    if spec.get("Type") == "Number":
        assert "MaxValue" in spec, f"Number parameter {name} has no MaxValue: its worst length is unbounded"
        return max(len(str(spec["MaxValue"])), len(str(spec.get("MinValue", 0))))
    assert "MaxLength" in spec, (f"parameter {name} reaches a function's environment without a MaxLength: its worst "
                                 "case is a 4,096-byte value; give it a MaxLength (and an AllowedPattern)")
    return int(spec["MaxLength"]) * worst_character(spec.get("AllowedPattern"), measure)


def _physical(resource: dict[str, Any], logical_id: str, template: "Worst") -> int:
    """``Ref`` of a resource at its longest: its explicit name, or the one CloudFormation generates."""
    kind = resource["Type"]
    properties = resource.get("Properties", {})
    if kind == "AWS::DynamoDB::Table":
        return template.length(properties["TableName"]) if "TableName" in properties \
            else STACK_NAME + len(logical_id) + 2 + GENERATED_SUFFIX
    if kind == "AWS::SQS::Queue":  # Ref is the queue URL: https://sqs.<region>.<suffix>/<account>/<name>
        return len("https://sqs.") + REGION + 1 + URL_SUFFIX + 1 + ACCOUNT_ID + 1 + template.queue_name(logical_id)
    if kind == "AWS::SecretsManager::Secret":  # Ref is the ARN
        name = template.length(properties["Name"]) if "Name" in properties \
            else STACK_NAME + len(logical_id) + 2 + GENERATED_SUFFIX
        return (len("arn:") + PARTITION + len(":secretsmanager:") + REGION + 1 + ACCOUNT_ID + len(":secret:") + name
                + SECRET_SUFFIX)
    if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):  # Ref is the function's name
        return template.length(properties["FunctionName"]) if "FunctionName" in properties else FUNCTION_NAME_LIMIT
    raise AssertionError(f"extend the worst-case check: Ref of a {kind} ({logical_id}) in an environment")


class Worst:
    """Worst lengths of the intrinsic values an environment can hold, read from the template."""

    def __init__(self, template: dict[str, Any], measure: Callable[[str], int] = cost) -> None:
        """``measure``: what a piece of text costs where it ends up (``cost`` in an environment, ``raw`` in a
        secret)."""
        self.parameters = template.get("Parameters", {})
        self.resources = template.get("Resources", {})
        self.measure = measure

    def queue_name(self, logical_id: str) -> int:
        properties = self.resources[logical_id].get("Properties", {})
        return self.length(properties["QueueName"]) if "QueueName" in properties \
            else STACK_NAME + len(logical_id) + 2 + GENERATED_SUFFIX

    def length(self, value: Any) -> int:
        """The most bytes ``value`` can take in the measured JSON."""
        if isinstance(value, str):
            return self.measure(value)
        if isinstance(value, (int, float, bool)):
            return len(json.dumps(value))
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            handlers: dict[str, Callable[[Any], int]] = {"Ref": self._ref, "Fn::Sub": self._sub,
                                                         "Fn::If": lambda a: max(self.length(a[1]), self.length(a[2])),
                                                         "Fn::GetAtt": self._get_att}
            if function in handlers:
                return handlers[function](argument)
        raise AssertionError(f"extend the worst-case check for {value!r}")

    def _ref(self, name: str) -> int:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return parameter_worst(name, self.parameters[name], self.measure)
        return _physical(self.resources[name], name, self)

    def _get_att(self, argument: Any) -> int:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        if self.resources[logical_id]["Type"] == "AWS::SQS::Queue" and attribute == "QueueName":
            return self.queue_name(logical_id)
        if self.resources[logical_id]["Type"] == "AWS::Serverless::HttpApi" or attribute == "Arn":
            return 64 + STACK_NAME  # an API id (10) or an ARN: generous
        raise AssertionError(f"extend the worst-case check for Fn::GetAtt {logical_id}.{attribute}")

    def _sub(self, argument: Any) -> int:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        total = 0
        for literal, name in re.findall(r"([^$]*)(?:\$\{([^}]*)\})?", text):
            total += self.measure(literal)
            if not name:
                continue
            if name in variables:
                total += self.length(variables[name])
            elif "." in name and not name.startswith("AWS::"):
                total += self._get_att(name)
            elif name == "ConnectorHttpApi" or self.resources.get(name, {}).get("Type") == "AWS::Serverless::HttpApi":
                total += 10  # API Gateway ids are ten characters
            else:
                total += self._ref(name)
        return total


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    body, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return body


def functions(template: dict[str, Any]) -> list[str]:
    return [logical_id for logical_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"]


def environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The function's variables as SAM gives them to Lambda: Globals merged with its own."""
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {**shared, **own}


def worst_environment_bytes(template: dict[str, Any], logical_id: str) -> tuple[int, dict[str, int]]:
    """The measured JSON's worst size, and each variable's share of it (``"NAME":"value",``)."""
    worst = Worst(template)
    shares = {name: cost(name) + worst.length(value) + 6 for name, value in environment(template, logical_id).items()}
    return 2 + sum(shares.values()) - (1 if shares else 0), shares


def test_every_function_environment_stays_within_lambdas_4_kb_at_its_worst(template: dict[str, Any]) -> None:
    over = {}
    for logical_id in functions(template):
        total, shares = worst_environment_bytes(template, logical_id)
        if total > LAMBDA_ENVIRONMENT_LIMIT:
            largest = sorted(shares.items(), key=lambda item: -item[1])[:6]
            over[logical_id] = (total, largest)
    assert over == {}, f"worst-case environments over {LAMBDA_ENVIRONMENT_LIMIT} bytes: {over}"


SECRET_STRING_LIMIT = 65_536
"""Secrets Manager's largest secret value, in bytes."""


def test_every_secret_the_template_writes_from_parameters_fits_secrets_manager(template: dict[str, Any]) -> None:
    """The parameter tables travel in a secret (not the environment): at their worst they still fit in it."""
    worst = Worst(template, raw)
    written = {logical_id: worst.length(resource["Properties"]["SecretString"])
               for logical_id, resource in template["Resources"].items()
               if resource["Type"] == "AWS::SecretsManager::Secret"}
    assert written and all(size <= SECRET_STRING_LIMIT for size in written.values()), written


def test_every_free_text_parameter_has_a_length_within_cloudformations_limit(template: dict[str, Any]) -> None:
    for name, spec in template["Parameters"].items():
        if spec.get("Type") == "String" and "AllowedValues" not in spec:
            assert "MaxLength" in spec, f"{name} has no MaxLength"
            per_character = worst_character(spec.get("AllowedPattern"), raw)
            assert int(spec["MaxLength"]) * per_character <= PARAMETER_VALUE_LIMIT, name


def test_the_max_lengths_docs_tables_md_lists_are_the_templates(template: dict[str, Any]) -> None:
    """The reader's table of limits (docs/tables.md, "The 4 KB story") says what the template says, for every free-text
    parameter."""
    text = (ROOT / "docs" / "tables.md").read_text(encoding="utf-8")
    rows = text.split("| parameter | MaxLength | pattern |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    listed: dict[str, int] = {}
    for row in rows:
        names, limit = row.split("|")[1:3]
        for name in re.findall(r"`([A-Za-z]+)`", names):
            listed[name] = int(limit.strip().replace(",", ""))
    free_text = {name: int(spec["MaxLength"]) for name, spec in template["Parameters"].items()
                 if spec.get("Type") == "String" and "AllowedValues" not in spec}
    assert listed == free_text


def test_the_worst_case_check_counts_what_lambda_measures() -> None:
    """The model agrees with the measured JSON on a concrete environment, and reads patterns as intended."""
    variables = {"OWNER_MAP": '{"V1": "acc"}', "LOG_LEVEL": "INFO"}
    measured = len(json.dumps(variables, separators=(",", ":")).encode())
    assert 2 + sum(cost(k) + cost(v) + 6 for k, v in variables.items()) - 1 == measured
    assert worst_character(r"[A-Z][A-Z0-9_]+") == 1
    assert worst_character(r"[ -~]*") == 2  # printable ASCII admits the quote and the backslash
    assert worst_character(r"[^\x00-\x1f\x7f]*") == 3
    assert worst_character(None) == 6 and worst_character(r"\S+") == 6  # a control character escapes to \u0001
    assert worst_character(r"[ -~]*", raw) == 1 and worst_character(r"[^\x00-\x1f\x7f]*", raw) == 3
    template = {"Parameters": {"P": {"Type": "String", "MaxLength": 10, "AllowedPattern": "[a-z]*"}},
                "Resources": {}}
    assert Worst(template).length({"Fn::Sub": "x-${P}-${AWS::Region}"}) == 2 + 10 + 1 + REGION


def report(template: dict[str, Any]) -> str:
    """Each function's worst case and headroom (``python -m tests.infra.test_environment_size``)."""
    lines = []
    for logical_id in functions(template):
        total, shares = worst_environment_bytes(template, logical_id)
        lines.append(f"{logical_id}: {total} bytes at worst, {LAMBDA_ENVIRONMENT_LIMIT - total} to spare")
        lines += [f"  {share:5}  {name}" for name, share in sorted(shares.items(), key=lambda item: -item[1])]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(decode(str(ROOT / "template.yaml"))[0]))
