"""AWS for the local run: moto's server, holding the tables, queues and secrets that template.yaml declares.

template.yaml is the one source of truth. Nothing here repeats a key schema, a queue attribute or a secret's keys:
the resources are read from the template and its intrinsics resolved the way CloudFormation would for a stack
named ``local`` in moto's default account, so a change to the template changes the local run and its tests too.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.request
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, Callable, Mapping

import boto3
from cfnlint.decode import decode
from moto.server import ThreadedMotoServer

from connector.errors import ConfigurationError

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
STACK_NAME = "local"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs built with !Sub match the ones moto hands out
WORK_QUEUE = "WorkQueue"
LOCAL_OUTPUTS = ("WorkQueueUrl", "DeadLetterQueueUrl", "TableName", "AcumaticaSecretArn", "JiraSecretArn",
                 "WebhookSecretArn")
_DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_PSEUDO_PARAMETERS = {
    "AWS::StackName": STACK_NAME,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
}
_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


_MOVE_TASK_ACTIONS = ("start_message_move_task", "list_message_move_tasks", "cancel_message_move_task")


def _refuse_what_moto_lacks() -> None:
    """SQS's message move tasks, where moto has none: answer them as an SQS endpoint without them does
    (``UnsupportedOperation``, a 400 the SDK does not retry) instead of moto's 500 and a traceback in the stack's
    output for every retry. ``connector replay`` then takes its portable path and says why, as it would against any
    such endpoint; a moto that implements the tasks keeps its own, and the local replay runs the native path."""
    from moto.core.exceptions import ServiceException
    from moto.sqs.responses import SQSResponse

    class UnsupportedOperation(ServiceException):
        code = "UnsupportedOperation"
        message = "message move tasks are not implemented by the local stack's SQS (moto)"

    def refuse(self: SQSResponse) -> None:
        raise UnsupportedOperation()

    for action in _MOVE_TASK_ACTIONS:
        if not hasattr(SQSResponse, action):
            setattr(SQSResponse, action, refuse)


_refuse_what_moto_lacks()


class TemplateError(Exception):
    """The template uses something the local stack cannot reproduce; extend this module rather than work around it."""


@dataclass
class _Physical:
    """What a resource's ``Ref`` and ``Fn::GetAtt`` give once it exists."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class _StackTemplate:
    """A decoded template plus validated parameter values; resolves intrinsics against the resources created so far."""

    def __init__(self, path: Path, parameters: Mapping[str, str]) -> None:
        template, problems = decode(str(path))
        if template is None or problems:
            raise TemplateError(f"cannot read {path}: {'; '.join(str(p) for p in problems)}")
        self.path = path
        self.body: dict[str, Any] = _plain(template)
        self.resources: dict[str, dict[str, Any]] = self.body.get("Resources", {})
        self.parameters = _validated_parameters(self.body.get("Parameters", {}), parameters)
        self.physical: dict[str, _Physical] = {}
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            try:
                definition = self.body["Conditions"][name]
            except KeyError:
                raise TemplateError(f"unknown condition {name!r}") from None
            self._conditions[name] = bool(self.resolve(definition))
        return self._conditions[name]

    def included(self, logical_id: str) -> bool:
        """Whether the resource exists for these parameters (its ``Condition`` holds)."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in ``value``; ``AWS::NoValue`` drops the key or item that holds it."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), = value.items()
            function = self._functions().get(name)
            if function is not None:
                return function(argument)
            if name.startswith("Fn::"):
                raise TemplateError(f"intrinsic {name} is not supported by the local stack")
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Join": lambda a: self.resolve(a[0]).join(str(v) for v in self.resolve(a[1])),
            "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Fn::Split": lambda a: self.resolve(a[1]).split(self.resolve(a[0])),
            "Fn::Equals": lambda a: str(self.resolve(a[0])) == str(self.resolve(a[1])),
            "Fn::Not": lambda a: not self.resolve(a[0]),
            "Fn::And": lambda a: all(self.resolve(v) for v in a),
            "Fn::Or": lambda a: any(self.resolve(v) for v in a),
            "Condition": self.condition,
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in _PSEUDO_PARAMETERS:
            return _PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._resource(name).ref

    def _get_att(self, argument: str | list[str]) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        try:
            return self._resource(logical_id).attributes[attribute]
        except KeyError:
            raise TemplateError(f"the local stack cannot resolve Fn::GetAtt {logical_id}.{attribute}") from None

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name)
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, argument: list[Any]) -> Any:
        condition, when_true, when_false = argument
        return self.resolve(when_true if self.condition(condition) else when_false)

    def _resource(self, logical_id: str) -> _Physical:
        if logical_id not in self.resources:
            raise TemplateError(f"reference to unknown parameter or resource {logical_id!r}")
        if logical_id not in self.physical:
            # Not created locally (functions, the HTTP API, alarms): a placeholder the caller may override.
            return _Physical(ref=f"{STACK_NAME}-{logical_id}")
        return self.physical[logical_id]


class LocalAws:
    """moto's server with the template's DynamoDB tables, SQS queues and Secrets Manager secrets created in it.

    Use ``LocalAws.start(parameters={...})`` as a context manager. Nothing global is changed: callers point their
    own clients at ``endpoint_url`` (``client()``, ``aws_environment()``). moto's state is per process and the
    stack is always named ``local``, so run one at a time in a process.
    """

    region = REGION

    def __init__(self, template: _StackTemplate, server: ThreadedMotoServer, endpoint_url: str) -> None:
        self._template = template
        self._server = server
        self.endpoint_url = endpoint_url
        self.outputs: dict[str, str] = {}
        self._stopped = False

    @classmethod
    def start(
        cls, template_path: str | Path = DEFAULT_TEMPLATE, parameters: Mapping[str, str] | None = None
    ) -> LocalAws:
        """Start moto on a free port of 127.0.0.1 and create the template's resources for ``parameters``.

        Raises ``ConfigurationError`` for a missing, unknown or invalid parameter (as CloudFormation would refuse
        the stack) and ``TemplateError`` for a construct this module cannot reproduce.
        """
        template = _StackTemplate(Path(template_path).resolve(), parameters or {})
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        aws = cls(template, server, f"http://{host}:{port}")
        try:
            aws._create_resources()
        except BaseException:
            aws.stop()
            raise
        return aws

    def __enter__(self) -> LocalAws:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and drop its state: moto's backends are per process (shared with any ``mock_aws``), so
        a later ``LocalAws`` in the same process starts from an empty account. Stopping twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        try:
            request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass
        finally:
            self._server.stop()

    def client(self, service: str) -> Any:
        """A boto3 client for moto, with explicit dummy credentials so no local AWS configuration is consulted."""
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region, **_DUMMY_CREDENTIALS)

    def aws_environment(self) -> dict[str, str]:
        """Variables that make boto3 in a handler (or a subprocess) talk to this moto server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": _DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": _DUMMY_CREDENTIALS["aws_secret_access_key"],
        }

    def resolve(self, value: Any) -> Any:
        """Resolve the intrinsics in a piece of the template (e.g. an event's ``ScheduleExpression``)."""
        return self._template.resolve(copy.deepcopy(value))

    @property
    def max_receive_count(self) -> int:
        """Receives before the work queue moves a message to its DLQ (the ``MaxReceiveCount`` parameter)."""
        policy = self.resolve(self._template.resources[WORK_QUEUE]["Properties"]["RedrivePolicy"])
        return int(policy["maxReceiveCount"])

    @property
    def worker_max_concurrency(self) -> int:
        """``ScalingConfig: MaximumConcurrency`` of the worker's SQS event (the ``WorkerMaxConcurrency`` parameter)."""
        for event in self.function_settings("WorkerFunction")["events"].values():
            if event.get("Type") == "SQS":
                return int(self.resolve(event["Properties"]["ScalingConfig"])["MaximumConcurrency"])
        raise TemplateError("WorkerFunction has no SQS event")

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's environment as Lambda would set it: Globals merged with its own variables, resolved.

        Values built from the HTTP API (``WEBHOOK_URL``) hold a placeholder host; the caller overrides them with
        its local gateway's URL.
        """
        properties = self._function(logical_id)
        variables = {
            **_globals(self._template.body).get("Environment", {}).get("Variables", {}),
            **properties.get("Environment", {}).get("Variables", {}),
        }
        return {name: str(value) for name, value in self.resolve(variables).items()}

    def function_settings(self, logical_id: str) -> dict[str, Any]:
        """Where the handler lives and how Lambda would run it: ``handler_path``, ``handler_name``, ``timeout``
        (seconds), ``memory`` (MB) and the raw SAM ``events``."""
        properties = {**_globals(self._template.body), **self._function(logical_id)}
        module, handler_name = str(properties["Handler"]).rsplit(".", 1)
        code_dir = self._template.path.parent / str(properties["CodeUri"])
        return {
            "handler_path": str((code_dir / (module.replace(".", "/") + ".py")).resolve()),
            "handler_name": handler_name,
            "timeout": int(self.resolve(properties.get("Timeout", 3))),
            "memory": int(self.resolve(properties.get("MemorySize", 128))),
            "reserved_concurrency": (int(self.resolve(properties["ReservedConcurrentExecutions"]))
                                     if "ReservedConcurrentExecutions" in properties else None),
            "events": copy.deepcopy(properties.get("Events", {})),
        }

    def _function(self, logical_id: str) -> dict[str, Any]:
        resource = self._template.resources.get(logical_id, {})
        if resource.get("Type") != "AWS::Serverless::Function":
            raise KeyError(f"{logical_id!r} is not a function of the template")
        return resource.get("Properties", {})

    def _create_resources(self) -> None:
        creators: dict[str, Callable[[str, dict[str, Any]], _Physical]] = {
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::SecretsManager::Secret": self._create_secret,
        }
        template = self._template
        wanted = {
            logical_id: resource
            for logical_id, resource in template.resources.items()
            if resource.get("Type") in creators and template.included(logical_id)
        }
        dependencies = {logical_id: _references(resource) & wanted.keys() for logical_id, resource in wanted.items()}
        for logical_id in TopologicalSorter(dependencies).static_order():
            resource = wanted[logical_id]
            properties = template.resolve(copy.deepcopy(resource.get("Properties", {})))
            template.physical[logical_id] = creators[resource["Type"]](logical_id, properties)
        for name, output in template.body.get("Outputs", {}).items():
            if _references(output) & template.resources.keys() <= wanted.keys():
                self.outputs[name] = str(template.resolve(copy.deepcopy(output["Value"])))

    def _create_table(self, logical_id: str, properties: dict[str, Any]) -> _Physical:
        dynamodb = self.client("dynamodb")
        name = properties.get("TableName") or f"{STACK_NAME}-{logical_id}"
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
            if key in properties:
                request[key] = properties[key]
        if "StreamSpecification" in request:
            request["StreamSpecification"] = {"StreamEnabled": True, **request["StreamSpecification"]}
        if "SSESpecification" in properties:
            sse = properties["SSESpecification"]
            request["SSESpecification"] = {"Enabled": _truthy(sse.get("SSEEnabled", False))} | (
                {"SSEType": sse["SSEType"]} if "SSEType" in sse else {}
            )
        description = dynamodb.create_table(**request)["TableDescription"]
        if "TimeToLiveSpecification" in properties:
            ttl = properties["TimeToLiveSpecification"]
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": _truthy(ttl["Enabled"])},
            )
        recovery = properties.get("PointInTimeRecoverySpecification", {})
        if _truthy(recovery.get("PointInTimeRecoveryEnabled", False)):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return _Physical(ref=name, attributes=attributes)

    def _create_queue(self, logical_id: str, properties: dict[str, Any]) -> _Physical:
        sqs = self.client("sqs")
        fifo = _truthy(properties.get("FifoQueue", False))
        name = properties.pop("QueueName", None) or f"{STACK_NAME}-{logical_id}" + (".fifo" if fifo else "")
        properties.pop("Tags", None)
        attributes = {
            key: (json.dumps(value) if isinstance(value, (dict, list)) else _attribute_text(value))
            for key, value in properties.items()
        }
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _Physical(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _create_secret(self, logical_id: str, properties: dict[str, Any]) -> _Physical:
        if "SecretString" not in properties:
            raise TemplateError(f"{logical_id}: the local stack needs a SecretString")
        request = {
            "Name": properties.get("Name") or f"{STACK_NAME}-{logical_id}",
            "SecretString": properties["SecretString"],
        }
        if "Description" in properties:
            request["Description"] = properties["Description"]
        arn = self.client("secretsmanager").create_secret(**request)["ARN"]
        return _Physical(ref=arn, attributes={"Id": arn})


def _validated_parameters(declared: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """Apply defaults and the constraints CloudFormation enforces, so a bad local value fails as a deploy would."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigurationError(f"unknown template parameters: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in declared.items():
        value = given.get(name, spec.get("Default"))
        if value is None:
            problems.append(f"{name} is required")
            continue
        value = str(value)
        problems.extend(f"{name} {problem}" for problem in _constraint_violations(spec, value))
        values[name] = _parameter_list(value) if spec.get("Type") == "CommaDelimitedList" else value
    if problems:
        raise ConfigurationError("invalid template parameters: " + "; ".join(problems))
    return values


def _constraint_violations(spec: Mapping[str, Any], value: str) -> list[str]:
    message = spec.get("ConstraintDescription")
    problems: list[str] = []
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return [f"must be a number, got {value!r}"]
        if "MinValue" in spec and number < float(spec["MinValue"]):
            problems.append(f"must be at least {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            problems.append(f"must be at most {spec['MaxValue']}")
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        problems.append(message or f"must match {spec['AllowedPattern']}")
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        problems.append(f"must be one of {spec['AllowedValues']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        problems.append(f"must have at least {spec['MinLength']} characters")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        problems.append(f"must have at most {spec['MaxLength']} characters")
    return problems


def _parameter_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",")] if value else []


def _globals(body: Mapping[str, Any]) -> dict[str, Any]:
    return body.get("Globals", {}).get("Function", {})


def _references(value: Any) -> set[str]:
    """Logical ids a piece of the template refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str) and not item.startswith("AWS::"):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item.split(".", 1)[0] if isinstance(item, str) else item[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                local = set() if isinstance(item, str) else set(item[1])
                found |= {
                    name.split(".", 1)[0]
                    for name in _SUB_VARIABLE.findall(text)
                    if not name.startswith(("AWS::", "!")) and name not in local
                }
                if not isinstance(item, str):
                    found |= _references(item[1])
            else:
                found |= _references(item)
    return found


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _attribute_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plain(value: Any) -> Any:
    """cfn-lint's decoder returns dict/str subclasses carrying line marks; hand out plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
