package forgegov.gates.dataset_test

import data.forgegov.gates.dataset
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name and kind, and
# the requesters, quorum and rejecters it reads from data.json. Outsiders hold
# another gate's role, so wiring this gate to that gate's settings would let
# them through.
doc(action, actor, approvals, changes) := fx.doc("dataset", "claims", action, actor, approvals, changes)

# grace owns the asset here, so alice may request only through her role.
test_request_by_engineer_is_pending if {
	d := dataset.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role data-steward (have 0 of 1)"}}
}

test_request_by_steward_is_pending if {
	d := dataset.decision with input as doc(
		"request", "bob", [],
		{"subject": {"owner": "grace", "state": "registered"}, "request": {"requested_by": "bob"}},
	)
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role data-steward (have 0 of 1)"}}
}

test_request_by_outsider_denied if {
	d := dataset.decision with input as doc("request", "carol", [], {"request": {"requested_by": "carol"}})
	d.deny == {"carol cannot request this gate for dataset claims v1: only its owner alice or a holder of one of the roles data-steward, ml-engineer may; ask one of them to request it"}
	not d.allow
}

test_approve_by_data_steward_allows if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := dataset.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
	d == {
		"allow": false,
		"deny": {"carol does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward"},
		"missing": {"1 more approval by role data-steward (have 0 of 1)"},
	}
}

test_reject_by_data_steward_allowed if {
	d := dataset.decision with input as doc("reject", "bob", [fx.new("bob", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_outsider_denied if {
	d := dataset.decision with input as doc("reject", "carol", [fx.new("carol", "reject")], {})
	d == {
		"allow": false,
		"deny": {"carol does not hold role data-steward and cannot reject this gate: ask a holder of role data-steward"},
		"missing": set(),
	}
}

test_wrong_subject_kind_denied if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"subject": {"kind": "reward"}})
	d.deny == {"the dataset gate only governs dataset subjects (got \"reward\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"gate": "reward"})
	d.deny == {"input.gate must be \"dataset\" for this policy (got \"reward\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
	not d.allow
}

test_missing_gate_settings_denied if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the dataset gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the dataset gate: a policy maintainer must add one to data.json",
	}
	not d.allow
}

test_absent_input_denies if {
	not dataset.decision.allow
	count(dataset.decision.deny) > 0
	dataset.decision.missing == set()
}
