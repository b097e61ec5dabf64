package forgegov.gates.run_test

import data.forgegov.gates.run
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name and kind, and
# the requesters, quorum and rejecters it reads from data.json. Outsiders hold
# another gate's role, so wiring this gate to that gate's settings would let
# them through.
doc(action, actor, approvals, changes) := fx.doc("run", "sft-claims", action, actor, approvals, changes)

# grace owns the asset here, so alice may request only through her role.
test_request_by_engineer_is_pending if {
	d := run.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role ml-lead (have 0 of 1)"}}
}

test_request_by_outsider_denied if {
	d := run.decision with input as doc("request", "bob", [], {"request": {"requested_by": "bob"}})
	d.deny == {"bob cannot request this gate for run sft-claims v1: only its owner alice or a holder of role ml-engineer may; ask one of them to request it"}
	not d.allow
}

test_approve_by_ml_lead_allows if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := run.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {})
	d == {
		"allow": false,
		"deny": {"bob does not hold role ml-lead and cannot approve this gate: ask a holder of role ml-lead"},
		"missing": {"1 more approval by role ml-lead (have 0 of 1)"},
	}
}

test_reject_by_ml_lead_allowed if {
	d := run.decision with input as doc("reject", "dave", [fx.new("dave", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_outsider_denied if {
	d := run.decision with input as doc("reject", "bob", [fx.new("bob", "reject")], {})
	d == {
		"allow": false,
		"deny": {"bob does not hold role ml-lead and cannot reject this gate: ask a holder of role ml-lead"},
		"missing": set(),
	}
}

test_wrong_subject_kind_denied if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"subject": {"kind": "checkpoint"}})
	d.deny == {"the run gate only governs run subjects (got \"checkpoint\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"gate": "promotion"})
	d.deny == {"input.gate must be \"run\" for this policy (got \"promotion\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
	not d.allow
}

test_missing_gate_settings_denied if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the run gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the run gate: a policy maintainer must add one to data.json",
	}
	not d.allow
}

test_absent_input_denies if {
	not run.decision.allow
	count(run.decision.deny) > 0
	run.decision.missing == set()
}
