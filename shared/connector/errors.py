"""Error types shared by every part of the connector.

The worker decides what to do with a failure purely from its type: a ``TransientError`` is retried (the SQS message
is reported as a batch item failure and comes back), a ``PermanentError`` goes to the dead-letter queue with its
reason, a ``Rejected`` input is answered to the caller (401/400/413) and never queued. Messages must never contain
secrets: adapters build them from status codes, URLs without credentials and the remote system's error text.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class of every error the connector raises on purpose."""


class TransientError(ConnectorError):
    """Worth retrying later: throttling (429), 5xx, timeouts, connection resets, a lock held by someone else."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryLater(TransientError):
    """A system asked for a wait (``Retry-After``) longer than this invocation may spend waiting in place.

    The wait is never shortened: nothing is sent to that system before it has passed, and the worker puts the record
    back on the queue with its visibility set to at least ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry_after)
        self.retry_after: float = retry_after


class SessionBusy(TransientError):
    """A definite "not now": Acumatica refused the request because a long operation (an action) runs in the session
    the connector's containers share (one session per OAuth grant), or another container's action holds that session.
    Nothing was done. The worker gives the work back to the queue without spending one of its attempts."""


class PermanentError(ConnectorError):
    """Retrying the same request cannot succeed; the message belongs in the DLQ with this reason."""


class ConfigurationError(PermanentError):
    """The deployment is misconfigured (wrong endpoint version, unknown project or field, missing secret key)."""


class ReconnectNeeded(PermanentError):
    """The OAuth refresh chain is dead: a person must run ``connector connect <system>`` again."""


class AuthenticationError(PermanentError):
    """Credentials were refused (401/403) even after a fresh token."""


class NotFoundError(PermanentError):
    """The remote record (document, issue, action) does not exist."""


class ValidationError(PermanentError):
    """The remote system refused the data (Acumatica 422, Jira 400) and said which fields were wrong."""

    def __init__(self, message: str, field_errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.field_errors = dict(field_errors or {})


class ActionRefused(PermanentError):
    """Acumatica refused an action outright and said why (its own exception, e.g. "You are not an authorized
    approver"): nothing was done, so the outcome is certain and a person is told, never left to settle."""


class UncertainOutcome(TransientError):
    """A side effect may or may not have happened (timeout after a POST); settle it by re-reading, never by resending."""


class Rejected(ConnectorError):
    """Input from outside that the connector refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DeliveryInProgress(TransientError):
    """Another invocation is queueing the same inbound delivery right now; the webhook answers 409 and Jira retries."""
