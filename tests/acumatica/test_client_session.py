"""The client in the grant's one session, against the sandbox: actions take turns through the lease, a request
refused because an action runs waits for it and is sent again, and past its budget says "not now" having changed
nothing. Also: workflow-action parameters and outright refusals."""

from __future__ import annotations

import threading
import time

import pytest

from connector.errors import ActionRefused, SessionBusy
from connector.http import gates_of
from connector.model import DocumentKey
from connector.session import OperationLease, is_session_busy
from tests.fakes import MemoryLock


@pytest.fixture
def slow(sandbox):
    sandbox.long_operation_seconds = 0.4
    return sandbox


def test_a_read_refused_by_a_running_action_waits_for_it_and_is_sent_again(slow, make_client):
    releasing, reading = make_client(sleep=time.sleep), make_client(sleep=time.sleep)  # one secret: one grant
    for _ in range(2):
        slow.add_document("Bill", Hold=False)
    reading.get(DocumentKey("Bill", "Bill", "000002"))  # both clients hold the grant's token now
    started = threading.Event()
    worker = threading.Thread(target=lambda: (started.set(), releasing.invoke_action(
        DocumentKey("Bill", "Bill", "000001"), "ReleaseBill")))
    worker.start()
    started.wait()
    time.sleep(0.1)

    document = reading.get(DocumentKey("Bill", "Bill", "000002"))
    worker.join()

    assert document is not None and document.status == "Balanced"
    assert slow.busy_refusals >= 1  # it was refused, and it waited instead of failing
    assert slow.document("Bill", ("Bill", "000001"))["Status"] == "Open"


def test_actions_of_two_containers_take_turns_and_never_collide(slow, make_client):
    lock = MemoryLock()
    clients = [make_client(sleep=time.sleep, operation_lease=OperationLease(lock, poll_seconds=0.05))
               for _ in range(2)]
    for _ in range(4):
        slow.add_document("Bill", Hold=False)
    clients[0].get(DocumentKey("Bill", "Bill", "000001"))
    errors: list[Exception] = []

    def release(client, numbers):
        for number in numbers:
            try:
                client.invoke_action(DocumentKey("Bill", "Bill", number), "ReleaseBill")
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=release, args=(clients[0], ["000001", "000002"])),
               threading.Thread(target=release, args=(clients[1], ["000003", "000004"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [entry[3] for entry in slow.action_log] == ["completed"] * 4
    refused = [r for r in slow.requests_log if r.method == "POST" and is_session_busy(r.status, r.response)]
    assert refused == []  # the lease, not Acumatica's refusal, made them take turns
    assert all(d["Status"] == "Open" for d in slow.documents("Bill"))


def test_a_session_busy_beyond_the_affordable_wait_raises_having_changed_nothing(sandbox, make_client, session):
    sandbox.long_operation_seconds = 3.0
    for _ in range(2):
        sandbox.add_document("Bill", Hold=False)
    owner, waiting = make_client(sleep=time.sleep), make_client(sleep=time.sleep)
    owner.get(DocumentKey("Bill", "Bill", "000001"))
    gates_of(session).bind(lambda: 10.6)  # 0.6 s affordable: the invocation is nearly out of time
    worker = threading.Thread(target=lambda: owner.invoke_action(DocumentKey("Bill", "Bill", "000001"),
                                                                 "ReleaseBill"))
    worker.start()
    time.sleep(0.2)

    with pytest.raises(SessionBusy):
        waiting.get(DocumentKey("Bill", "Bill", "000002"))
    gates_of(session).bind(None)
    worker.join()


def test_an_action_waits_for_another_containers_lease_then_gives_up_without_sending(sandbox, make_client):
    lock = MemoryLock()
    lock.acquire("acumatica-session", "another-container", 60)
    client = make_client(operation_lease=OperationLease(lock, poll_seconds=0.01))
    sandbox.add_document("Bill", Hold=False)
    client._affordable_wait = lambda: 0.1

    with pytest.raises(SessionBusy):
        client.invoke_action(DocumentKey("Bill", "Bill", "000001"), "ReleaseBill")
    assert sandbox.action_log == []


def test_the_approval_reason_parameter_is_read_from_the_schema_and_sent(sandbox, client):
    sandbox.approval_reasons = True
    sandbox.add_document("Bill", Hold=False, requires_approval=True, reason_required=True)
    key = DocumentKey("Bill", "Bill", "000001")

    parameters = client.action_parameters("Bill", "approve")
    approved = client.invoke_action(key, "Approve", parameters={parameters[0]: "Checked with the vendor"})

    assert parameters == ["ReasonApproveRejectParams.Reason"]
    assert approved.status == "Balanced"
    assert sandbox.approvals("Bill", ("Bill", "000001"))[0]["reason"] == "Checked with the vendor"
    assert client.action_parameters("Bill", "ReleaseBill") == []


def test_a_refusal_in_acumaticas_own_words_is_definite_not_uncertain(sandbox, client):
    sandbox.add_document("PurchaseOrder", Hold=False, approvers=[["buyer.kim"]])

    with pytest.raises(ActionRefused, match="not an authorized approver"):
        client.invoke_action(DocumentKey("PurchaseOrder", "Normal", "PO000001"), "Approve")


def test_a_hold_a_put_cannot_lift_is_reported_as_acumatica_kept_it(sandbox, client):
    sandbox.hold_by_workflow.add("PurchaseOrder")
    sandbox.hold_actions.add("PurchaseOrder")
    sandbox.add_document("PurchaseOrder")
    key = DocumentKey("PurchaseOrder", "Normal", "PO000001")

    assert client.set_hold(key, False).status == "On Hold"
    assert "ReleaseFromHold" in client.workflow_actions("PurchaseOrder")
    assert client.invoke_action(key, "ReleaseFromHold").status == "Open"
