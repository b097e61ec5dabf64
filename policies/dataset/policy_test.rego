package forgegov.gates.dataset_test

import data.forgegov.gates.dataset

now := "2026-11-22T20:00:00Z"

fresh := "2026-11-22T19:00:00Z"

# 169 hours before now: one hour past the 168 hour limit in data.json.
stale := "2026-11-15T19:00:00Z"

subject := {
	"kind": "dataset",
	"name": "claims",
	"version": 1,
	"digest": "sha256:0f",
	"owner": "alice",
	"state": "pending",
	"stage": null,
	"release": null,
}

signed(name, verdict, is_new, at, revoked) := {
	"approver": name,
	"key_id": concat("", ["key-", name]),
	"verdict": verdict,
	"signed_at": at,
	"key_revoked": revoked,
	"new": is_new,
}

new(name, verdict) := signed(name, verdict, true, fresh, false)

earlier(name) := signed(name, "approve", false, fresh, false)

# A version 1 document as the gate assembles it; `changes` is merged in.
doc(action, actor, approvals, changes) := object.union(
	{
		"version": 1,
		"gate": "dataset",
		"action": action,
		"now": now,
		"actor": {"name": actor, "key_id": concat("", ["key-", actor])},
		"subject": subject,
		"request": {"id": "req-1", "requested_by": "alice", "requested_at": "2026-11-22T18:00:00Z", "target": null},
		"approvals": approvals,
		"evidence": {},
	},
	changes,
)

# The reviewer role alone leaves nobody a second seat; adding privacy-officer
# to the quorum lets a test keep the request pending after a valid approval.
# The whole gates object is replaced because `with` on a nested data path
# is merged into what its parent reads (an empty quorum would vanish).
with_quorum(quorum) := json.patch(data.data.gates, [{"op": "replace", "path": "/dataset/quorum", "value": quorum}])

two_role_gates := with_quorum({"data-steward": 1, "privacy-officer": 1})

no_quorum_gates := with_quorum({})

test_request_by_engineer_is_pending if {
	d := dataset.decision with input as doc("request", "alice", [], {"subject": {"state": "registered"}})
	d.deny == set()
	d.missing == {"1 more approval by role data-steward (have 0 of 1)"}
	not d.allow
}

test_approve_with_quorum_allows if {
	d := dataset.decision with input as doc("approve", "bob", [new("bob", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_with_too_few_approvals_is_pending if {
	d := dataset.decision with input as doc("approve", "bob", [new("bob", "approve")], {})
		with data.data.gates as two_role_gates
	d.deny == set()
	d.missing == {"1 more approval by role privacy-officer (have 0 of 1)"}
	not d.allow
}

test_second_role_completes_quorum if {
	d := dataset.decision with input as doc("approve", "grace", [earlier("bob"), new("grace", "approve")], {})
		with data.data.gates as two_role_gates
	d.allow
}

test_self_approval_denied if {
	d := dataset.decision with input as doc(
		"approve", "bob", [new("bob", "approve")],
		{"subject": {"owner": "bob"}, "request": {"requested_by": "bob"}},
	)
	d.deny == {"bob requested this approval and cannot approve it: ask a holder of role data-steward"}
	not d.allow
}

test_earlier_self_approval_still_denied if {
	d := dataset.decision with input as doc("approve", "grace", [earlier("alice"), new("grace", "approve")], {})
		with data.data.gates as two_role_gates
		with data.data.roles.alice as ["data-steward"]
	"alice requested this approval and cannot approve it: ask a holder of one of the roles data-steward, privacy-officer" in d.deny
}

test_double_approval_denied if {
	d := dataset.decision with input as doc("approve", "bob", [earlier("bob"), new("bob", "approve")], {})
	d.deny == {"bob has already approved this request: ask another holder of role data-steward"}
	not d.allow
}

test_approver_without_role_denied if {
	d := dataset.decision with input as doc("approve", "mallory", [new("mallory", "approve")], {})
	d.deny == {"mallory does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward"}
	d.missing == {"1 more approval by role data-steward (have 0 of 1)"}
	not d.allow
}

test_approve_without_new_signed_approval_denied if {
	d := dataset.decision with input as doc("approve", "bob", [earlier("bob")], {})
	d.deny == {"input.approvals holds no new approve verdict signed by bob: submit it again through forgegov so it is signed and verified"}
}

test_requester_without_role_and_not_owner_denied if {
	d := dataset.decision with input as doc("request", "mallory", [], {"request": {"requested_by": "mallory"}})
	d.deny == {"mallory cannot request this gate for dataset claims v1: only its owner alice or a holder of one of the roles data-steward, ml-engineer may; ask one of them to request it"}
	not d.allow
}

test_owner_without_role_may_request if {
	d := dataset.decision with input as doc(
		"request", "grace", [],
		{"subject": {"owner": "grace", "state": "registered"}, "request": {"requested_by": "grace"}},
	)
	d.deny == set()
	count(d.missing) == 1
}

test_request_for_approved_subject_denied if {
	d := dataset.decision with input as doc("request", "alice", [], {"subject": {"state": "approved"}})
	d.deny == {"dataset claims v1 is already approved: there is nothing to request"}
}

test_request_for_rejected_subject_denied if {
	d := dataset.decision with input as doc("request", "alice", [], {"subject": {"state": "rejected"}})
	d.deny == {"dataset claims v1 was rejected: register a new version and request approval for that"}
}

test_reject_by_rejecter_allowed if {
	d := dataset.decision with input as doc("reject", "bob", [new("bob", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_non_rejecter_denied if {
	d := dataset.decision with input as doc("reject", "mallory", [new("mallory", "reject")], {})
	d.deny == {"mallory does not hold role data-steward and cannot reject this gate: ask a holder of role data-steward"}
	d.missing == set()
	not d.allow
}

test_reject_by_requester_denied if {
	d := dataset.decision with input as doc(
		"reject", "bob", [new("bob", "reject")],
		{"subject": {"owner": "bob"}, "request": {"requested_by": "bob"}},
	)
	d.deny == {"bob requested this approval and cannot reject it: ask a holder of role data-steward"}
}

revoked_doc := doc(
	"approve", "grace",
	[signed("bob", "approve", false, fresh, true), new("grace", "approve")],
	{},
)

test_revoked_key_approval_does_not_count if {
	d := dataset.decision with input as revoked_doc with data.data.gates as two_role_gates
	d.deny == set()
	d.missing == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: its key key-bob was revoked after signing; bob must approve again",
	}
	not d.allow
}

test_revoked_key_approval_counts_when_data_allows if {
	d := dataset.decision with input as revoked_doc
		with data.data.gates as two_role_gates
		with data.data.approvals.count_revoked_keys as true
	d.allow
}

test_stale_approval_does_not_count if {
	d := dataset.decision with input as doc(
		"approve", "grace",
		[signed("bob", "approve", false, stale, false), new("grace", "approve")],
		{},
	)
		with data.data.gates as two_role_gates
	d.deny == set()
	d.missing == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: it was signed at 2026-11-15T19:00:00Z, more than 168 hours before 2026-11-22T20:00:00Z; bob must approve again",
	}
}

test_stale_approval_may_be_renewed if {
	d := dataset.decision with input as doc(
		"approve", "bob",
		[signed("bob", "approve", false, stale, false), new("bob", "approve")],
		{},
	)
	d.allow
}

test_wrong_subject_kind_denied if {
	d := dataset.decision with input as doc("approve", "bob", [new("bob", "approve")], {"subject": {"kind": "reward"}})
	d.deny == {"the dataset gate only governs dataset subjects (got \"reward\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := dataset.decision with input as doc("approve", "bob", [new("bob", "approve")], {"gate": "reward"})
	count(d.deny) == 1
	not d.allow
}

test_wrong_version_denied if {
	d := dataset.decision with input as doc("approve", "bob", [new("bob", "approve")], {"version": 2})
	d.deny == {"input.version must be 1 (got 2): send a version 1 gate document"}
	not d.allow
}

test_unknown_action_denied if {
	d := dataset.decision with input as doc("withdraw", "bob", [], {})
	d.deny == {"unknown action: input.action must be one of approve, reject, request (got \"withdraw\")"}
	not d.allow
}

test_missing_actor_denied if {
	d := dataset.decision with input as json.remove(doc("approve", "bob", [new("bob", "approve")], {}), ["actor/name"])
	"input.actor.name is missing: every action must name the person taking it" in d.deny
	not d.allow
}

test_missing_gate_settings_denied if {
	d := dataset.decision with input as doc("approve", "bob", [new("bob", "approve")], {})
		with data.data.gates as {}
	"policy data has no settings for the dataset gate: a policy maintainer must add them to data.json" in d.deny
	not d.allow
}

test_empty_quorum_denied if {
	d := dataset.decision with input as doc("request", "alice", [], {}) with data.data.gates as no_quorum_gates
	d.deny == {"policy data sets no quorum for the dataset gate: a policy maintainer must add one to data.json"}
	not d.allow
}

test_empty_input_denies if {
	d := dataset.decision with input as {}
	not d.allow
	count(d.deny) > 0
	d.missing == set()
}

test_absent_input_denies if {
	not dataset.decision.allow
	count(dataset.decision.deny) > 0
}
