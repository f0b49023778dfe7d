"""Secrets Manager adapter: one JSON secret, read fresh and written whole (``connector.ports.SecretStore``), on a
secret's text as stored (which the parameter tables' lines are read from too).

Reads are not cached here on purpose: the rotating-token manager must see what another container wrote a moment ago.
Static secret material (webhook secrets) is read through Powertools parameters with a cache in the handlers instead.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Self

from .errors import ConfigurationError


class SecretsManagerText:
    """One secret's text as stored: what the JSON secret and the parameter tables' lines
    (``connector.table_store.ParameterTablesSecret``) are each read from."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self._client = client
        self._secret_id = secret_id

    @classmethod
    def from_id(cls, secret_id: str) -> Self:
        import boto3

        return cls(boto3.client("secretsmanager"), secret_id)

    def read_text(self) -> str:
        return self._client.get_secret_value(SecretId=self._secret_id).get("SecretString") or ""


class SecretsManagerSecret(SecretsManagerText):
    def read(self) -> dict[str, Any]:
        try:
            value = json.loads(self.read_text() or "{}")
        except json.JSONDecodeError:
            raise ConfigurationError(f"secret {self._secret_id} is not a JSON object") from None
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {self._secret_id} is not a JSON object")
        return value

    def write(self, value: Mapping[str, Any]) -> None:
        self._client.put_secret_value(SecretId=self._secret_id, SecretString=json.dumps(dict(value)))
