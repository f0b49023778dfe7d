"""Every timing the connector's guarantees rest on, in one place, with the reason each has its value.

The guarantees hold only while these agree with each other and with template.yaml (function timeouts, the work
queue's visibility timeout and retention, ``MaxReceiveCount``): tests/infra/test_timings.py reads the template and
asserts the inequalities below, so a change to one number that breaks another fails the build, not production.

- a claim's retake window outlives any worker (the attempt that holds it is really gone), yet is short enough that
  a message waiting on it is retried after it expires, before ``MaxReceiveCount`` sends it to the DLQ;
- the visibility timeout is at least six worker timeouts (Lambda's guidance for SQS event sources);
- the token lease outlasts the slowest refresh, timeouts and throttling waits included, so the lock is a lock;
- an imported table version takes effect within ``TABLES_TAKE_EFFECT_SECONDS``: the cache's age plus the longest
  worker invocation, which keeps the version it started with;
- the worker starts a record only while the time left covers the slowest record it has seen (at least
  ``RECORD_RESERVE_SECONDS``);
- the Acumatica session lease outlasts the longest silence of its holder (a POST's full timeout, or a wait and a
  status request), and the work it holds back is given back to the queue often enough to outlive a crashed holder's
  lease before it starts counting attempts;
- the resolution sweep's windows overlap by more than Jira search lags behind a change, and by more than the grace it
  leaves deliveries before it acts in their place.
"""

from __future__ import annotations

WORKER_TIMEOUT_SECONDS = 120
POLLER_TIMEOUT_SECONDS = 300
WEBHOOK_TIMEOUT_SECONDS = 10
MAINTENANCE_TIMEOUT_SECONDS = 120

VISIBILITY_TIMEOUT_SECONDS = 720
"""Work queue: a failed attempt comes back after this long (six worker timeouts)."""
MESSAGE_RETENTION_SECONDS = 345_600
DEAD_LETTER_RETENTION_SECONDS = 1_209_600
MAX_RECEIVE_COUNT_DEFAULT = 5
MAX_RECEIVE_COUNT_MIN = 3
"""Below three attempts a single claim waiting out its retake window would send a healthy document to the DLQ."""
LONGEST_VISIBILITY_SECONDS = 43_200
"""SQS's ceiling for ``ChangeMessageVisibility``: a longer ``Retry-After`` brings the work back after 12 h, when the
system answers again with what is left of its wait."""

CREATE_RETAKE_SECONDS = 900.0
"""A creation claim older than this belongs to a crashed attempt (longer than the worker's timeout, and long enough
for Jira search to have caught up), so it may be retaken after searching for the issue it may have created."""
COMMENT_RETAKE_SECONDS = 600.0
"""An update claim older than this belongs to a crashed attempt; retaking it risks a repeated comment (unless the
claim recorded its comment), never an issue."""
SETTLE_AFTER_SECONDS = 900.0
"""An action claim in flight for longer than this outlived any worker: its attempt was interrupted."""
JIRA_SEARCH_LAG_SECONDS = 300.0
"""The longest Jira search has been seen to lag a create; a creation claim must outlast it."""

JIRA_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for Jira's REST API and token endpoint."""
ACUMATICA_TIMEOUT = (10.0, 60.0)
"""Acumatica delays throttled requests rather than refusing them, so its read timeout is generous."""
ACUMATICA_TOKEN_TIMEOUT_SECONDS = 30.0
HTTP_RETRIES = 4
"""urllib3 retries per call (``connector.http.make_session``)."""
LONGEST_WAIT_IN_PLACE_SECONDS = 30.0
"""The longest ``Retry-After`` a request waits out in the container; a longer one sends the work back to the queue."""

OPERATOR_ANSWER_SECONDS = 15.0
"""Every operator command (``connector ping``, ``status``, ``preview``...) answers within this, whatever is down: a
person at a prompt, or a script in a pipeline, waits no longer to learn that a host does not answer. The functions
keep their own, longer timeouts above; only the command-line tool uses the ones below."""
OPERATOR_STARTUP_SECONDS = 3.0
"""What the tool spends before its first request (interpreter, imports, configuration), on a slow shared machine."""
OPERATOR_CONNECT_TIMEOUT = 3.0
"""A host that has not accepted a connection in 3 s is reported as not answering (no retry waits for a blackhole)."""
OPERATOR_READ_TIMEOUT = 8.0
"""Acumatica may think a while before the first byte of a page; longer than this is reported, not waited out."""
OPERATOR_CONNECT_RETRIES = 1
"""One more connection attempt (a dropped SYN); a read that timed out is not retried by the tool."""
OPERATOR_LONGEST_WAIT_SECONDS = 3.0
"""The longest ``Retry-After`` the tool waits out; a longer one is reported with the wait it asked for."""
OPERATOR_AWS_ATTEMPTS = 2
OPERATOR_AWS_READ_TIMEOUT = 5.0
"""AWS answers in milliseconds: two attempts of at most a connect and a 5 s read each."""
PING_DEADLINE_SECONDS = OPERATOR_ANSWER_SECONDS - OPERATOR_STARTUP_SECONDS
"""``connector ping`` reports by then; a check still waiting is reported as not answered in time."""

TOKEN_LEASE_SECONDS = 330.0
"""Outlasts the slowest refresh (``slowest_token_refresh``): a holder that is merely slow never loses the lease."""
TOKEN_WAIT_SECONDS = 25.0
"""How long another container waits for the holder's new token before giving the work back to the queue."""

TABLES_CACHE_SECONDS = 60.0
"""How long a container routes on the tables it last read before it reads the current-version pointer (and the
parameter tables) again: one small read a minute, and an import is in effect for all new work within a minute."""
TABLES_TAKE_EFFECT_SECONDS = 300.0
"""The promise of docs/tables.md: an import or a rollback routes every document a worker starts this long after it."""
GROUP_MEMBERSHIP_CACHE_SECONDS = 300.0
"""How long a container trusts a person's Jira groups (``DecisionAuthority``): a burst of resolutions by one clerk
costs one groups call, and someone removed from a group loses their authority within this long (at most
``GROUP_MEMBERSHIP_STALEST_SECONDS``)."""
GROUP_MEMBERSHIP_STALEST_SECONDS = 600.0
"""The longest a revoked group membership may still decide: what docs/decisions.md promises the auditors."""

ACUMATICA_ACTION_TIMEOUT_SECONDS = 60.0
"""How long an action's status URL is polled for ``204`` before its outcome is left to the re-read."""
ACUMATICA_STATUS_POLL_MAX_SECONDS = 5.0
"""The longest pause between two polls of an action's status URL (the pauses double from 0.5 s up to this)."""
SESSION_LEASE_SECONDS = 150.0
"""The lease on the Acumatica session an action holds (renewed at every status poll): longer than the longest time
the holder stays silent (a POST that takes its whole timeout, or a pause plus a status request), so a live holder keeps
it, and a crashed one frees it within this long."""
MAX_SESSION_DEFERRALS = 30
"""How many times work refused by a busy Acumatica session goes back to the queue as new (its attempts untouched)
before further refusals count as failed attempts: each deferral first waits in place for what the invocation can
afford, so together they outlive a crashed holder's lease many times over."""

RESOLUTION_SWEEP_OVERLAP_SECONDS = 360.0
"""Each resolution sweep reaches this far before the previous one: longer than Jira search lags a change
(``JIRA_SEARCH_LAG_SECONDS``) and than ``RESOLUTION_SWEEP_GRACE_SECONDS``, so a resolution that one sweep could not
see yet, or left to its delivery, falls in the next sweep's window."""
RESOLUTION_SWEEP_GRACE_SECONDS = 120.0
"""Resolutions younger than this are left to their delivery (Jira delivers within seconds): the sweep acting first
would count a delivery as lost that was only on its way."""

RECORD_RESERVE_SECONDS = 30.0
"""The least time a record is started with; the worker also keeps the slowest record seen so far in reserve."""
DELETION_CHECK_RESERVE_SECONDS = 20.0
"""The maintenance run's deleted-document check starts no slice of lookups (about five requests) with less of the run
left: a slice at Acumatica's usual pace and the run's report fit in it. A slower Acumatica can still end the run
mid-slice; what earlier slices found is already queued, and the next run looks again."""


def slowest_token_refresh() -> float:
    """Worst case of one refresh: every attempt slow and throttled, each wait spent in place, then the function's
    own timeout, since a refresh cannot outlive the function that runs it (the lease then lapses, as it should)."""
    attempts = HTTP_RETRIES + 1
    slowest_attempt = max(sum(JIRA_TIMEOUT), 2 * ACUMATICA_TOKEN_TIMEOUT_SECONDS)
    by_calls = attempts * slowest_attempt + HTTP_RETRIES * LONGEST_WAIT_IN_PLACE_SECONDS
    return min(by_calls, max(WORKER_TIMEOUT_SECONDS, POLLER_TIMEOUT_SECONDS, MAINTENANCE_TIMEOUT_SECONDS))
