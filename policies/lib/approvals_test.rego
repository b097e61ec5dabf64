package forgegov.lib.approvals_test

import data.forgegov.lib.approvals

now := "2026-11-22T20:00:00Z"

fresh := "2026-11-22T19:00:00Z"

# 169 hours before now: one hour past the 168 hour limit in data.json.
stale := "2026-11-15T19:00:00Z"

signed(name, verdict, at, revoked) := {
	"approver": name,
	"key_id": concat("", ["key-", name]),
	"verdict": verdict,
	"signed_at": at,
	"key_revoked": revoked,
	"new": false,
}

ok(name) := signed(name, "approve", fresh, false)

doc(actor, approvals_list) := {
	"now": now,
	"actor": {"name": actor},
	"request": {"requested_by": "alice"},
	"approvals": approvals_list,
}

test_roles_of_known_name if approvals.roles_of("bob") == ["data-steward"]

test_roles_of_unknown_name_is_empty if approvals.roles_of("nobody") == []

test_holds_any if {
	approvals.holds_any("erin", ["ml-lead", "release-manager"])
	not approvals.holds_any("mallory", ["ml-lead", "release-manager"])
}

test_role_phrase_single if approvals.role_phrase(["ml-lead"]) == "role ml-lead"

test_role_phrase_several_sorted if {
	approvals.role_phrase({"release-manager", "ml-lead"}) == "one of the roles ml-lead, release-manager"
}

test_requester_from_open_request if approvals.requester(doc("bob", [])) == "alice"

test_requester_of_new_request_is_actor if approvals.requester({"actor": {"name": "dave"}}) == "dave"

test_within_max_age_fresh if approvals.within_max_age(doc("bob", []), ok("bob"))

test_within_max_age_exactly_at_limit if {
	approvals.within_max_age(doc("bob", []), signed("bob", "approve", "2026-11-15T20:00:00Z", false))
}

test_within_max_age_stale if {
	not approvals.within_max_age(doc("bob", []), signed("bob", "approve", stale, false))
}

test_within_max_age_unparsable_is_stale if {
	not approvals.within_max_age(doc("bob", []), signed("bob", "approve", "yesterday", false))
}

test_within_max_age_follows_data if {
	approvals.within_max_age(doc("bob", []), signed("bob", "approve", stale, false)) with data.data.approvals.max_age_hours as 170
}

test_qualifying_counts_distinct_people if {
	approvals.qualifying_approvers(doc("bob", [ok("bob"), ok("bob")]), "data-steward") == {"bob"}
}

test_qualifying_skips_requester_roleless_and_rejects if {
	approvals.qualifying_approvers(
		doc("bob", [ok("alice"), ok("mallory"), signed("bob", "reject", fresh, false)]),
		"data-steward",
	) == set()
}

test_qualifying_skips_revoked_key if {
	approvals.qualifying_approvers(doc("bob", [signed("bob", "approve", fresh, true)]), "data-steward") == set()
}

test_qualifying_counts_revoked_key_when_data_says_so if {
	approvals.qualifying_approvers(doc("bob", [signed("bob", "approve", fresh, true)]), "data-steward") == {"bob"} with data.data.approvals.count_revoked_keys as true
}

test_qualifying_skips_stale if {
	approvals.qualifying_approvers(doc("bob", [signed("bob", "approve", stale, false)]), "data-steward") == set()
}

test_missing_empty_when_quorum_met if {
	approvals.missing(doc("bob", [ok("bob")]), {"data-steward": 1}) == set()
}

test_missing_names_role_and_count if {
	approvals.missing(doc("bob", []), {"data-steward": 1}) == {"1 more approval by role data-steward (have 0 of 1)"}
}

test_missing_plural_and_partial if {
	approvals.missing(doc("erin", [ok("erin")]), {"release-manager": 2}) == {"1 more approval by role release-manager (have 1 of 2)"}
	approvals.missing(doc("erin", []), {"release-manager": 2}) == {"2 more approvals by role release-manager (have 0 of 2)"}
}

test_missing_explains_revoked_key if {
	approvals.missing(doc("bob", [signed("bob", "approve", fresh, true)]), {"data-steward": 1}) == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: its key key-bob was revoked after signing; bob must approve again",
	}
}

test_missing_explains_stale if {
	approvals.missing(doc("bob", [signed("bob", "approve", stale, false)]), {"data-steward": 1}) == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: it was signed at 2026-11-15T19:00:00Z, more than 168 hours before 2026-11-22T20:00:00Z; bob must approve again",
	}
}

test_missing_no_explanation_once_renewed if {
	approvals.missing(doc("bob", [signed("bob", "approve", stale, false), ok("bob")]), {"data-steward": 1}) == set()
}

test_self_approval_denied if {
	approvals.self_approval_denies(doc("alice", [ok("alice")]), ["data-steward"]) == {"alice requested this approval and cannot approve it: ask a holder of role data-steward"}
}

test_self_approval_checks_every_approval if {
	approvals.self_approval_denies(doc("bob", [ok("alice"), ok("bob")]), ["data-steward"]) == {"alice requested this approval and cannot approve it: ask a holder of role data-steward"}
}

test_no_self_approval if {
	approvals.self_approval_denies(doc("bob", [ok("bob")]), ["data-steward"]) == set()
}

test_duplicate_approval_denied if {
	approvals.duplicate_approval_denies(doc("bob", [ok("bob"), ok("bob")]), ["data-steward"]) == {"bob has already approved this request: ask another holder of role data-steward"}
}

test_single_approval_not_duplicate if {
	approvals.duplicate_approval_denies(doc("erin", [ok("erin"), ok("frank")]), ["release-manager"]) == set()
}

test_renewing_a_stale_approval_is_not_duplicate if {
	approvals.duplicate_approval_denies(doc("bob", [signed("bob", "approve", stale, false), ok("bob")]), ["data-steward"]) == set()
}

test_renewing_a_revoked_approval_is_not_duplicate if {
	approvals.duplicate_approval_denies(doc("bob", [signed("bob", "approve", fresh, true), ok("bob")]), ["data-steward"]) == set()
}

new_approval(name, verdict) := object.union(signed(name, verdict, fresh, false), {"new": true})

test_approve_denies_empty_for_role_holder if {
	approvals.approve_denies(doc("bob", [new_approval("bob", "approve")]), ["data-steward"]) == set()
}

test_approve_denies_actor_without_role if {
	approvals.approve_denies(doc("mallory", [new_approval("mallory", "approve")]), ["data-steward"]) == {"mallory does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward"}
}

test_approve_denies_without_new_approval if {
	approvals.approve_denies(doc("bob", [ok("bob")]), ["data-steward"]) == {"input.approvals holds no new approve verdict signed by bob: submit it again through forgegov so it is signed and verified"}
}

test_approve_denies_when_new_approval_is_someone_elses if {
	count(approvals.approve_denies(doc("bob", [new_approval("dave", "approve")]), ["data-steward"])) == 1
}

test_reject_denies_empty_for_rejecter if {
	approvals.reject_denies(doc("bob", [new_approval("bob", "reject")]), ["data-steward"]) == set()
}

test_reject_denies_non_rejecter if {
	approvals.reject_denies(doc("mallory", [new_approval("mallory", "reject")]), ["data-steward"]) == {"mallory does not hold role data-steward and cannot reject this gate: ask a holder of role data-steward"}
}

test_reject_denies_requester if {
	approvals.reject_denies(doc("alice", [new_approval("alice", "reject")]), ["data-steward"]) == {"alice requested this approval and cannot reject it: ask a holder of role data-steward"} with data.data.roles.alice as ["data-steward"]
}

test_reject_denies_an_approve_verdict if {
	approvals.reject_denies(doc("bob", [new_approval("bob", "approve")]), ["data-steward"]) == {"input.approvals holds no new reject verdict signed by bob: submit it again through forgegov so it is signed and verified"}
}

# Self-approval is denied anyway; this guards the count on its own so a
# requester's approval can never fill a seat even if a deny rule is removed.
test_qualifying_skips_requester_holding_the_role if {
	approvals.qualifying_approvers(doc("bob", [ok("alice"), ok("bob")]), "data-steward") == {"bob"} with data.data.roles.alice as ["data-steward"]
}

test_qualifying_skips_an_approval_given_for_other_evidence if {
	approvals.qualifying_approvers(doc("bob", [object.union(ok("bob"), {"evidence_current": false})]), "data-steward") == set()
	approvals.qualifying_approvers(doc("bob", [object.union(ok("bob"), {"evidence_current": true})]), "data-steward") == {"bob"}
}

test_missing_explains_an_approval_given_for_other_evidence if {
	approvals.missing(doc("bob", [object.union(ok("bob"), {"evidence_current": false})]), {"data-steward": 1}) == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: it was given for evidence that has changed since (a new check, an input withdrawn or replaced); bob must approve again",
	}
}

test_an_approval_given_for_other_evidence_may_be_given_again if {
	approvals.duplicate_approval_denies(
		doc("bob", [object.union(ok("bob"), {"evidence_current": false}), object.union(ok("bob"), {"new": true})]),
		["data-steward"],
	) == set()
}
