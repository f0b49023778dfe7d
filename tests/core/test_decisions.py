"""``connector.decisions``: what a resolution means and who may decide, as a table of cases and as properties that
hypothesis attacks; and the parsers of the five settings."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import Settings
from connector.decisions import (
    AUTOMATION_FOR_JIRA,
    Actor,
    Answer,
    AuthorityTable,
    DecisionPolicy,
    Facts,
    decide,
    parse_approving_resolutions,
    parse_decision_authority,
    parse_decline_action,
    parse_declining_statuses,
    parse_non_person_accounts,
)
from connector.errors import ConfigurationError
from connector.tables import TABLES

ME = "557058:connector"
CLERK = Actor("clerk-1", "atlassian", True, "Casey Clerk")
TABLE = parse_decision_authority({"ap-clerks": {"Bill": 1000}, "ap-supervisors": {"Bill": 25000, "*": 5000},
                                  "finance-controllers": {"*": None}, "acct-kim": {"Check": "2500.50"}})
LIMITED = DecisionPolicy(authority=TABLE)
DECLINING = DecisionPolicy(decline_actions={"PurchaseOrder": "Reject"}, authority=TABLE)


def facts(actor: Actor = CLERK, *, moved_to: str = "Done", status_now: str | None = None,
          resolutions: tuple[str, ...] = ("Done",), entity: str = "Bill", document_status: str = "Balanced",
          amount: str | None = "800.00", groups: tuple[str, ...] = ("ap-clerks",)) -> Facts:
    return Facts(actor=actor, connector_account=ME, moved_to=moved_to, status_now=status_now or moved_to,
                 resolutions=resolutions, entity=entity, document_status=document_status,
                 amount=Decimal(amount) if amount is not None else None, currency="USD", groups=frozenset(groups))


CASES = [
    # who moved it ---------------------------------------------------------------------------------------------------
    ("a person's Done acts", facts(), DecisionPolicy(), Answer.ACT, "Casey Clerk"),
    ("the connector's own move is not a decision, and not told", facts(Actor(ME, "app", True)), DecisionPolicy(),
     Answer.NOT_A_DECISION, "connector's own"),
    ("Automation for Jira is a rule", facts(Actor(AUTOMATION_FOR_JIRA, "app", True, "Automation for Jira")),
     DecisionPolicy(), Answer.NOT_A_DECISION, "Automation for Jira"),
    ("Automation for Jira is a rule even if Jira called it a person",
     facts(Actor(AUTOMATION_FOR_JIRA, "atlassian", True)), DecisionPolicy(), Answer.NOT_A_DECISION, "rule"),
    ("another app", facts(Actor("557058:app", "app", True, "Some app")), DecisionPolicy(), Answer.NOT_A_DECISION,
     "an app's account"),
    ("a service-desk customer", facts(Actor("qm:1", "customer", True, "A customer")), DecisionPolicy(),
     Answer.NOT_A_DECISION, "customer"),
    ("a deactivated person", facts(Actor("gone", "atlassian", False, "Left")), DecisionPolicy(),
     Answer.NOT_A_DECISION, "deactivated"),
    ("an author Jira did not type", facts(Actor("x", "", True)), DecisionPolicy(), Answer.NOT_A_DECISION,
     "type unknown"),
    ("no author at all", facts(Actor("", "atlassian", True)), DecisionPolicy(), Answer.NOT_A_DECISION,
     "no author"),
    ("an account listed in NonPersonAccounts", facts(Actor("bot-7", "atlassian", True)),
     DecisionPolicy(non_person_accounts=("bot-7",)), Answer.NOT_A_DECISION, "NonPersonAccounts"),
    # what the move says ---------------------------------------------------------------------------------------------
    ("team-managed: the status Won't Do declines whatever resolution Jira set",
     facts(moved_to="Won't Do", resolutions=("Done",)), DecisionPolicy(), Answer.DECLINE, "Won't Do"),
    ("company-managed: Done with the resolution Won't Do declines", facts(resolutions=("Won't Do",)),
     DecisionPolicy(), Answer.DECLINE, "Won't Do"),
    ("a resolution outside ApprovingResolutions declines", facts(resolutions=("Cannot Reproduce",)),
     DecisionPolicy(), Answer.DECLINE, "Cannot Reproduce"),
    ("a resolution changed after the move still declines", facts(resolutions=("Done", "Duplicate")),
     DecisionPolicy(), Answer.DECLINE, "Duplicate"),
    ("a declining status compares without case", facts(moved_to="won't do"), DecisionPolicy(), Answer.DECLINE,
     "won't do"),
    ("an approving resolution compares without case", facts(resolutions=("FIXED",)), DecisionPolicy(), Answer.ACT,
     ""),
    ("no resolution at all is a yes", facts(resolutions=()), DecisionPolicy(), Answer.ACT, ""),
    ("a later move into a declining status declines", facts(status_now="Rejected"), DecisionPolicy(),
     Answer.DECLINE, "Rejected"),
    ("a 'no' needs no authority: it posts nothing", facts(resolutions=("Won't Do",), groups=()), LIMITED,
     Answer.DECLINE, "Won't Do"),
    ("DeclineAction rejects a purchase order pending approval",
     facts(resolutions=("Won't Do",), entity="PurchaseOrder", document_status="Pending Approval",
           groups=("finance-controllers",)), DECLINING, Answer.DECLINE, "under finance-controllers"),
    ("DeclineAction does nothing to a purchase order on hold",
     facts(resolutions=("Won't Do",), entity="PurchaseOrder", document_status="On Hold"), DECLINING,
     Answer.DECLINE, "Won't Do"),
    ("a rejection needs authority like an approval",
     facts(resolutions=("Won't Do",), entity="PurchaseOrder", document_status="Pending Approval"), DECLINING,
     Answer.REFUSE, "neither their groups"),
    # authority ------------------------------------------------------------------------------------------------------
    ("a clerk within the limit", facts(amount="1000.00"), LIMITED, Answer.ACT, "under ap-clerks: Bill up to 1,000.00"),
    ("a clerk above the limit", facts(amount="1000.01"), LIMITED, Answer.REFUSE, "ap-clerks: Bill up to 1,000.00"),
    ("a clerk whose limit covers bills only", facts(entity="PurchaseOrder", amount="10.00"), LIMITED, Answer.REFUSE,
     "PurchaseOrder"),
    ("a person in no group of the table", facts(groups=("jira-software-users",)), LIMITED, Answer.REFUSE,
     "neither their groups nor their account"),
    ("group names compare without case", facts(groups=("AP-Clerks",)), LIMITED, Answer.ACT, "ap-clerks"),
    ("an entity's own limit wins over the key's *", facts(amount="20000", groups=("ap-supervisors",)), LIMITED,
     Answer.ACT, "ap-supervisors: Bill up to 25,000.00"),
    ("the key's * covers the other entities", facts(entity="Check", amount="5000", groups=("ap-supervisors",)),
     LIMITED, Answer.ACT, "ap-supervisors: any document up to 5,000.00"),
    ("the broadest of a person's limits is the one that allows", facts(amount="900", groups=("ap-clerks",
                                                                                             "finance-controllers")),
     LIMITED, Answer.ACT, "finance-controllers: any document, no limit"),
    ("an accountId is a key too", facts(Actor("acct-kim", "atlassian", True), entity="Check", amount="2500.50",
                                        groups=()), LIMITED, Answer.ACT, "acct-kim: Check up to 2,500.50"),
    ("a document without an amount needs no limit", facts(amount=None), LIMITED, Answer.REFUSE, "(none)"),
    ("...which a null limit covers", facts(amount=None, groups=("finance-controllers",)), LIMITED, Answer.ACT,
     "no limit"),
    ("an empty table limits no one", facts(amount="99999999", groups=()), DecisionPolicy(), Answer.ACT,
     "no DecisionAuthority table"),
]


@pytest.mark.parametrize(("name", "given_facts", "policy", "answer", "said"), CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, given_facts, policy, answer, said):
    verdict = decide(given_facts, policy)
    assert verdict.answer is answer, verdict.reason
    assert said in verdict.reason


def test_a_refusal_names_who_may_decide_and_the_limit_that_applied():
    verdict = decide(facts(amount="3000"), LIMITED)
    assert verdict.answer is Answer.REFUSE and verdict.rule.key == "ap-clerks"
    assert [limit.key for limit in verdict.may_decide] == ["ap-supervisors", "finance-controllers"]
    assert "Casey Clerk (groups: ap-clerks)" in verdict.reason


def test_an_action_names_the_person_their_groups_and_the_rule():
    verdict = decide(facts(groups=("ap-clerks", "jira-software-users")), LIMITED)
    assert verdict.reason == ("decided by Casey Clerk (groups: ap-clerks, jira-software-users) under ap-clerks: Bill up "
                              "to 1,000.00 USD")
    assert verdict.acts and verdict.rule.amount == Decimal("1000")


def test_only_a_person_and_only_with_a_table_needs_the_groups_read():
    assert LIMITED.wants_groups(facts())
    assert not DecisionPolicy().wants_groups(facts())
    assert not LIMITED.wants_groups(facts(Actor(AUTOMATION_FOR_JIRA, "app", True)))
    assert not LIMITED.wants_groups(facts(Actor("gone", "atlassian", False)))


def test_a_no_that_posts_nothing_needs_no_groups_and_names_none():
    wont_do = facts(moved_to="Won't Do", resolutions=("Won't Do",), groups=())
    unread = replace(wont_do, groups=None)
    assert not LIMITED.wants_groups(wont_do)
    verdict = decide(unread, LIMITED)  # told without the groups call, which may lack its scope
    assert verdict.answer is Answer.DECLINE and verdict.reason == "Casey Clerk resolved it as Won't Do"
    rejecting = facts(moved_to="Won't Do", resolutions=("Won't Do",), entity="PurchaseOrder",
                      document_status="Pending Approval")
    assert DECLINING.wants_groups(rejecting)  # a "no" that posts Reject needs the same authority as a "yes"


# --- properties -------------------------------------------------------------------------------------------------------

NAMES = st.sampled_from(["Done", "Fixed", "Resolved", "Approved", "Won't Do", "Rejected", "Declined", "Canceled",
                         "Cancelled", "Duplicate", "Closed", "Cannot Reproduce", "DONE", "won't do", "Incomplete"])
GROUPS = st.sampled_from(["ap-clerks", "ap-supervisors", "finance-controllers", "AP-CLERKS", "jira-software-users",
                          "other"])
ACTORS = st.builds(Actor, account_id=st.sampled_from([ME, AUTOMATION_FOR_JIRA, "clerk-1", "acct-kim", "bot-7", ""]),
                   account_type=st.sampled_from(["atlassian", "app", "customer", "", "ATLASSIAN"]),
                   active=st.booleans(), display_name=st.text(max_size=12))
AMOUNTS = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
FACTS = st.builds(Facts, actor=ACTORS, connector_account=st.just(ME), moved_to=NAMES, status_now=NAMES,
                  resolutions=st.lists(NAMES, max_size=2).map(tuple),
                  entity=st.sampled_from(["Bill", "PurchaseOrder", "Check"]),
                  document_status=st.sampled_from(["On Hold", "Balanced", "Pending Approval", "Open"]),
                  amount=AMOUNTS, currency=st.just("USD"), groups=st.frozensets(GROUPS, max_size=3))
POLICIES = st.builds(DecisionPolicy, non_person_accounts=st.sampled_from([(AUTOMATION_FOR_JIRA,),
                                                                          (AUTOMATION_FOR_JIRA, "bot-7")]),
                     decline_actions=st.sampled_from([{}, {"PurchaseOrder": "Reject", "Bill": "Reject"}]),
                     authority=st.sampled_from([AuthorityTable(), TABLE]))


@settings(max_examples=400, deadline=None)
@given(FACTS, POLICIES)
def test_nothing_declining_and_nobody_but_an_active_person_within_authority_ever_acts(given_facts, policy):
    """No input whose resolution or status is declining, or whose author is not an active atlassian person outside
    NonPersonAccounts (nor the connector), or whose amount exceeds every covering limit, ever yields act."""
    verdict = decide(given_facts, policy)
    if verdict.answer is not Answer.ACT:
        return
    actor = given_facts.actor
    assert actor.account_type == "atlassian" and actor.active and actor.account_id
    assert actor.account_id not in policy.non_person_accounts and actor.account_id != ME
    declining = {name.casefold() for name in policy.declining_statuses}
    assert given_facts.moved_to.casefold() not in declining and given_facts.status_now.casefold() not in declining
    approving = {name.casefold() for name in policy.approving_resolutions}
    assert all(name.casefold() in approving for name in given_facts.resolutions)
    if policy.authority:
        keys = {key for key in policy.authority.keys if key == actor.account_id
                or key.casefold() in {group.casefold() for group in given_facts.groups}}
        assert verdict.rule is not None and verdict.rule.key in keys
        assert verdict.rule.covers(given_facts.amount)


@settings(max_examples=300, deadline=None)
@given(FACTS, POLICIES)
def test_only_a_decline_action_within_authority_posts_a_no(given_facts, policy):
    verdict = decide(given_facts, policy)
    if verdict.answer is Answer.DECLINE and verdict.action:
        assert given_facts.document_status == "Pending Approval"
        assert verdict.action == policy.decline_actions[given_facts.entity]
        assert not policy.authority or (verdict.rule is not None and verdict.rule.covers(given_facts.amount))
    if verdict.answer is Answer.NOT_A_DECISION:
        assert not verdict.acts


@settings(max_examples=300, deadline=None)
@given(FACTS)
def test_a_refusal_always_names_keys_that_do_cover_the_document(given_facts):
    verdict = decide(given_facts, LIMITED)
    if verdict.answer is Answer.REFUSE:
        assert all(limit.covers(given_facts.amount) for limit in verdict.may_decide)
        assert "finance-controllers" in {limit.key for limit in verdict.may_decide}  # null covers everything


# --- the settings' parsers --------------------------------------------------------------------------------------------

def test_comma_lists_trim_and_fall_back_to_their_defaults_when_empty():
    def parameter(name: str, text: str):
        return TABLES[name].from_parameter(text)

    assert parameter("ApprovingResolutions", " Done ,Approved,, Done") == ("Done", "Approved")
    assert parameter("ApprovingResolutions", "") == ("Done", "Fixed", "Resolved", "Approved")
    assert "Won't Do" in parameter("DecliningStatuses", " ")
    assert parameter("NonPersonAccounts", "") == (AUTOMATION_FOR_JIRA,)
    assert parameter("NonPersonAccounts", f"{AUTOMATION_FOR_JIRA}, 557058:bot") == (AUTOMATION_FOR_JIRA,
                                                                                    "557058:bot")
    assert parse_approving_resolutions([" Done", "Done"]) == ("Done",)
    assert parse_declining_statuses([]) == parse_declining_statuses([" "])


@pytest.mark.parametrize("value", ["Done, Fixed", {"Done": True}, [1, 2], None])
def test_a_list_table_that_is_not_a_list_of_names_is_refused(value):
    with pytest.raises(ValueError, match="must be a list of Jira"):
        parse_approving_resolutions(value)


def test_an_authority_table_reads_numbers_strings_and_nulls_exactly():
    table = parse_decision_authority({"ap": {"Bill": 1000.1, "PurchaseOrder": "250", "Check": None, "*": 0}})
    assert [(limit.entity, limit.amount) for limit in table.limits] == [
        ("Bill", Decimal("1000.1")), ("PurchaseOrder", Decimal("250")), ("Check", None), ("*", Decimal("0"))]
    assert not parse_decision_authority({})
    assert parse_decline_action({"PurchaseOrder": " Reject "}) == {"PurchaseOrder": "Reject"}


@pytest.mark.parametrize(("value", "named"), [
    ([], "must be a JSON object"),
    ({"ap-clerks": {"Invoice": 1}}, "ap-clerks: 'Invoice' is not an entity"),
    ({"ap-clerks": {"Bill": -1}}, "ap-clerks.Bill"),
    ({"ap-clerks": {"Bill": "a lot"}}, "ap-clerks.Bill"),
    ({"ap-clerks": {"Bill": True}}, "ap-clerks.Bill"),
    ({"ap-clerks": {"Bill": float("nan")}}, "ap-clerks.Bill"),
    ({"ap-clerks": {"Bill": "Infinity"}}, "ap-clerks.Bill"),
    ({"ap-clerks": 1000}, "ap-clerks: must be a non-empty object"),
    ({"ap-clerks": {}}, "ap-clerks: must be a non-empty object"),
    ({" ap-clerks": {"Bill": 1}}, "not a Jira group name"),
])
def test_an_invalid_authority_table_names_the_entry(value, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.").replace("(", r"\(")):
        parse_decision_authority(value)


@pytest.mark.parametrize(("value", "named"), [
    ("[]", "must be a JSON object"), ({"Invoice": "Reject"}, "'Invoice' is not an entity"),
    ({"PurchaseOrder": ""}, "PurchaseOrder: the action"), ({"Bill": 3}, "Bill: the action"),
])
def test_an_invalid_decline_action_names_the_entry(value, named):
    with pytest.raises(ValueError, match=named):
        parse_decline_action(value)


def test_a_non_person_account_with_spaces_is_refused():
    with pytest.raises(ValueError, match="not a Jira accountId"):
        parse_non_person_accounts(["Automation for Jira"])


BASE = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
        "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"}


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("DECISION_AUTHORITY", "{ap-clerks: 1}", "DecisionAuthority (DECISION_AUTHORITY): is not valid JSON"),
    ("DECISION_AUTHORITY", '{"ap-clerks": {"Bill": -5}}',
     "DecisionAuthority (DECISION_AUTHORITY): ap-clerks.Bill: the limit must be a number of at least 0"),
    ("DECLINE_ACTION", '{"Invoice": "Reject"}', "DeclineAction (DECLINE_ACTION): 'Invoice' is not an entity"),
    ("NON_PERSON_ACCOUNTS", "two words", "NonPersonAccounts (NON_PERSON_ACCOUNTS): 'two words'"),
    ("APPROVING_RESOLUTIONS", "x" * 300, "ApprovingResolutions (APPROVING_RESOLUTIONS): resolution"),
])
def test_an_invalid_table_fails_the_cold_start_with_one_line_naming_it(variable, value, line):
    with pytest.raises(ConfigurationError) as failure:
        Settings.from_env({**BASE, variable: value})
    assert str(failure.value).startswith(line) and "\n" not in str(failure.value)


def test_the_settings_carry_the_parsed_policy():
    policy = Settings.from_env({**BASE, "DECISION_AUTHORITY": '{"ap-clerks": {"Bill": 1000}}',
                                "DECLINE_ACTION": '{"PurchaseOrder": "Reject"}', "DECLINING_STATUSES": "Nope"}
                               ).decision_policy
    assert policy.authority.keys == ("ap-clerks",) and policy.decline_actions == {"PurchaseOrder": "Reject"}
    assert policy.declining_statuses == ("Nope",) and policy.approving_resolutions[0] == "Done"
