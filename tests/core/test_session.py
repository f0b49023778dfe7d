"""The grant's one Acumatica session: what counts as "busy", and actions taking turns through the lease."""

from __future__ import annotations

import pytest

from connector.errors import SessionBusy
from connector.session import LEASE_NAME, OperationLease, is_session_busy
from tests.core.conftest import Clock
from tests.fakes import MemoryLock

BUSY = [
    (500, {"message": "An error has occurred.", "exceptionMessage": "The previous operation has not been completed yet.",
           "exceptionType": "PX.Data.PXException"}, True),
    (500, {"message": "An error has occurred.", "exceptionMessage": "Operation failed",
           "exceptionType": "PX.Api.ContractBased.LongOperationInProgressException"}, True),
    (422, {"exceptionMessage": "A long-running operation is in progress for this screen."}, True),
    (500, {"message": "An error has occurred.", "exceptionMessage": "Document is On Hold and cannot be released."},
     False),
    (500, {"message": "Injected fault"}, False),
    (503, None, False),
    (200, {"exceptionMessage": "The previous operation has not been completed yet."}, False),
]


@pytest.mark.parametrize("status, body, busy", BUSY)
def test_only_a_refusal_naming_the_running_operation_is_busy(status, body, busy):
    assert is_session_busy(status, body) is busy


class Sleeps:
    def __init__(self, clock: Clock) -> None:
        self.clock, self.slept = clock, []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)


def test_an_action_holds_the_session_and_gives_it_back():
    lock, clock = MemoryLock(), Clock()
    lease = OperationLease(lock, clock=clock, sleep=Sleeps(clock))
    with lease.held("ReleaseBill on Bill:Bill:1", budget=5) as renew:
        assert not lock.acquire(LEASE_NAME, "another container", 60)
        assert renew()
    assert lock.acquire(LEASE_NAME, "another container", 60)


def test_another_containers_action_is_waited_for_within_the_budget_then_not_now():
    clock = Clock()
    lock = MemoryLock(clock=clock)
    lock.acquire(LEASE_NAME, "another container", 3)
    sleeps = Sleeps(clock)
    lease = OperationLease(lock, clock=clock, sleep=sleeps, poll_seconds=0.5)

    with lease.held("Approve on Bill:Bill:2", budget=10):  # its lease ends after 3 s: this one gets its turn
        pass
    assert 3 <= sum(sleeps.slept) <= 4

    lock.acquire(LEASE_NAME, "a slow container", 60)
    with pytest.raises(SessionBusy):
        with lease.held("ReleaseBill on Bill:Bill:3", budget=2):
            pytest.fail("must not run without the session")
