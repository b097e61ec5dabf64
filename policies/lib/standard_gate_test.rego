package forgegov.lib.standard_gate_test

import data.forgegov.lib.fixtures_test as fx
import data.forgegov.lib.standard_gate

# The library sees only the settings it is handed, so its tests hand it their
# own rather than depend on a gate's entry in data.json. These match the
# dataset gate so that the documents below are valid dataset documents.
settings := {
	"requesters": ["ml-engineer", "data-steward"],
	"quorum": {"data-steward": 1},
	"rejecters": ["data-steward"],
}

# The steward role alone leaves nobody a second seat; adding privacy-officer
# lets a test keep the request pending after a valid approval.
two_roles := object.union(settings, {"quorum": {"privacy-officer": 1}})

doc(action, actor, approvals, changes) := fx.doc("dataset", "claims", action, actor, approvals, changes)

deny(inp) := standard_gate.deny(inp, "dataset", settings)

missing(inp) := standard_gate.missing(inp, settings.quorum)

test_settings_of_reads_each_gate if {
	every name in ["dataset", "reward", "run", "promotion", "base"] {
		standard_gate.settings_of(name) == data.data.gates[name]
	}
}

test_settings_of_absent_gate_is_empty if {
	standard_gate.settings_of("dataset") == {} with data.data.gates as {}
}

test_request_is_pending_until_quorum if {
	inp := doc("request", "alice", [], {"subject": {"state": "registered"}})
	deny(inp) == set()
	missing(inp) == {"1 more approval by role data-steward (have 0 of 1)"}
}

test_quorum_met_leaves_nothing if {
	inp := doc("approve", "bob", [fx.new("bob", "approve")], {})
	deny(inp) == set()
	missing(inp) == set()
}

test_too_few_approvals_is_pending if {
	inp := doc("approve", "bob", [fx.new("bob", "approve")], {})
	standard_gate.deny(inp, "dataset", two_roles) == set()
	standard_gate.missing(inp, two_roles.quorum) == {"1 more approval by role privacy-officer (have 0 of 1)"}
}

test_second_role_completes_quorum if {
	inp := doc("approve", "grace", [fx.earlier("bob"), fx.new("grace", "approve")], {})
	standard_gate.deny(inp, "dataset", two_roles) == set()
	standard_gate.missing(inp, two_roles.quorum) == set()
}

test_self_approval_denied if {
	deny(doc(
		"approve", "bob", [fx.new("bob", "approve")],
		{"subject": {"owner": "bob"}, "request": {"requested_by": "bob"}},
	)) == {"bob requested this approval and cannot approve it: ask a holder of role data-steward"}
}

test_earlier_self_approval_still_denied if {
	inp := doc("approve", "grace", [fx.earlier("alice"), fx.new("grace", "approve")], {})
	"alice requested this approval and cannot approve it: ask a holder of one of the roles data-steward, privacy-officer" in standard_gate.deny(inp, "dataset", two_roles) with data.data.roles.alice as ["data-steward"]
}

test_request_carrying_self_approval_denied if {
	deny(doc("request", "alice", [fx.earlier("alice")], {})) == {"alice requested this approval and cannot approve it: ask a holder of role data-steward"}
}

test_double_approval_denied if {
	deny(doc("approve", "bob", [fx.earlier("bob"), fx.new("bob", "approve")], {})) == {"bob has already approved this request: ask another holder of role data-steward"}
}

test_approver_without_role_denied if {
	inp := doc("approve", "mallory", [fx.new("mallory", "approve")], {})
	deny(inp) == {"mallory does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward"}
	missing(inp) == {"1 more approval by role data-steward (have 0 of 1)"}
}

test_approve_without_new_signed_approval_denied if {
	deny(doc("approve", "bob", [fx.earlier("bob")], {})) == {"input.approvals holds no new approve verdict signed by bob: submit it again through forgegov so it is signed and verified"}
}

test_requester_without_role_and_not_owner_denied if {
	deny(doc("request", "mallory", [], {"request": {"requested_by": "mallory"}})) == {"mallory cannot request this gate for dataset claims v1: only its owner alice or a holder of one of the roles data-steward, ml-engineer may; ask one of them to request it"}
}

test_owner_without_role_may_request if {
	inp := doc(
		"request", "grace", [],
		{"subject": {"owner": "grace", "state": "registered"}, "request": {"requested_by": "grace"}},
	)
	deny(inp) == set()
	count(missing(inp)) == 1
}

test_request_for_approved_subject_denied if {
	deny(doc("request", "alice", [], {"subject": {"state": "approved"}})) == {"dataset claims v1 is already approved: there is nothing to request"}
}

test_request_for_rejected_subject_denied if {
	deny(doc("request", "alice", [], {"subject": {"state": "rejected"}})) == {"dataset claims v1 was rejected: register a new version and request approval for that"}
}

# The state is checked when a request is opened; the approvals that follow
# are on a subject the request has already made pending.
test_subject_state_not_rechecked_on_approve if {
	deny(doc("approve", "bob", [fx.new("bob", "approve")], {"subject": {"state": "rejected"}})) == set()
}

test_reject_by_rejecter_needs_no_quorum if {
	inp := doc("reject", "bob", [fx.new("bob", "reject")], {})
	deny(inp) == set()
	missing(inp) == set()
}

test_reject_by_non_rejecter_denied if {
	inp := doc("reject", "mallory", [fx.new("mallory", "reject")], {})
	deny(inp) == {"mallory does not hold role data-steward and cannot reject this gate: ask a holder of role data-steward"}
	missing(inp) == set()
}

test_reject_by_requester_denied if {
	deny(doc(
		"reject", "bob", [fx.new("bob", "reject")],
		{"subject": {"owner": "bob"}, "request": {"requested_by": "bob"}},
	)) == {"bob requested this approval and cannot reject it: ask a holder of role data-steward"}
}

revoked_doc := doc(
	"approve", "grace",
	[fx.signed("bob", "approve", false, fx.fresh, true), fx.new("grace", "approve")],
	{},
)

test_revoked_key_approval_does_not_count if {
	standard_gate.deny(revoked_doc, "dataset", two_roles) == set()
	standard_gate.missing(revoked_doc, two_roles.quorum) == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: its key key-bob was revoked after signing; bob must approve again",
	}
}

test_revoked_key_approval_counts_when_data_allows if {
	standard_gate.deny(revoked_doc, "dataset", two_roles) == set() with data.data.approvals.count_revoked_keys as true
	standard_gate.missing(revoked_doc, two_roles.quorum) == set() with data.data.approvals.count_revoked_keys as true
}

test_stale_approval_does_not_count if {
	inp := doc(
		"approve", "grace",
		[fx.signed("bob", "approve", false, fx.stale, false), fx.new("grace", "approve")],
		{},
	)
	standard_gate.deny(inp, "dataset", two_roles) == set()
	standard_gate.missing(inp, two_roles.quorum) == {
		"1 more approval by role data-steward (have 0 of 1)",
		"approval by bob does not count for role data-steward: it was signed at 2026-11-15T19:00:00Z, more than 168 hours before 2026-11-22T20:00:00Z; bob must approve again",
	}
}

test_stale_approval_may_be_renewed if {
	inp := doc(
		"approve", "bob",
		[fx.signed("bob", "approve", false, fx.stale, false), fx.new("bob", "approve")],
		{},
	)
	deny(inp) == set()
	missing(inp) == set()
}

test_wrong_subject_kind_denied if {
	deny(doc("approve", "bob", [fx.new("bob", "approve")], {"subject": {"kind": "reward"}})) == {"the dataset gate only governs dataset subjects (got \"reward\"): use the gate for that kind"}
}

# deny is deny_for_kind with the gate's own name as the kind; a gate named
# otherwise checks the kind it is handed, and still its own name.
test_deny_for_kind_checks_the_kind_given if {
	inp := object.union(doc("approve", "bob", [fx.new("bob", "approve")], {"gate": "base"}), {"subject": {"kind": "checkpoint"}})
	standard_gate.deny_for_kind(inp, "base", "checkpoint", settings) == set()
	standard_gate.deny(inp, "base", settings) == {"the base gate only governs base subjects (got \"checkpoint\"): use the gate for that kind"}
	standard_gate.deny_for_kind(inp, "checkpoint", "checkpoint", settings) == {
		"input.gate must be \"checkpoint\" for this policy (got \"base\"): query data.forgegov.gates.<gate>.decision for the document's gate",
		"policy data has no settings for the checkpoint gate: a policy maintainer must add them to data.json",
	}
}

test_wrong_gate_denied if {
	deny(doc("approve", "bob", [fx.new("bob", "approve")], {"gate": "reward"})) == {"input.gate must be \"dataset\" for this policy (got \"reward\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
}

test_wrong_version_denied if {
	deny(doc("approve", "bob", [fx.new("bob", "approve")], {"version": 2})) == {"input.version must be 1 (got 2): send a version 1 gate document"}
}

test_unknown_action_denied if {
	inp := doc("revise", "bob", [], {})
	deny(inp) == {"unknown action: input.action must be one of approve, reject, request, withdraw (got \"revise\")"}
	missing(inp) == set()
}

test_missing_actor_denied if {
	"input.actor.name is missing: every action must name the person taking it" in deny(json.remove(doc("approve", "bob", [fx.new("bob", "approve")], {}), ["actor/name"]))
}

test_missing_gate_settings_denied if {
	inp := doc("approve", "bob", [fx.new("bob", "approve")], {})
	standard_gate.deny(inp, "dataset", standard_gate.settings_of("dataset")) == {
		"policy data has no settings for the dataset gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the dataset gate: a policy maintainer must add one to data.json",
	} with data.data.gates as {}
}

test_empty_or_absent_quorum_denied if {
	without_quorum := object.remove(settings, ["quorum"])
	every quorum_settings in [without_quorum, object.union(without_quorum, {"quorum": {}})] {
		standard_gate.deny(doc("request", "alice", [], {}), "dataset", quorum_settings) == {"policy data sets no quorum for the dataset gate: a policy maintainer must add one to data.json"}
	}
}

test_empty_document_denies if {
	count(deny({})) > 0
	missing({}) == set()
}

# The promotion gate calls these parts with its target's quorum; each acts
# only on the actions it is about.
test_approval_denies_only_on_request_and_approve if {
	self_approval := [fx.new("alice", "approve")]
	count(standard_gate.approval_denies(doc("request", "alice", self_approval, {}), settings.quorum)) == 1
	count(standard_gate.approval_denies(doc("approve", "alice", self_approval, {}), settings.quorum)) == 2
	standard_gate.approval_denies(doc("reject", "alice", self_approval, {}), settings.quorum) == set()
}

test_rejection_denies_only_on_reject if {
	count(standard_gate.rejection_denies(doc("reject", "mallory", [fx.new("mallory", "reject")], {}), settings.rejecters)) == 1
	standard_gate.rejection_denies(doc("approve", "mallory", [fx.new("mallory", "reject")], {}), settings.rejecters) == set()
}
