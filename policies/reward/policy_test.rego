package forgegov.gates.reward_test

import data.forgegov.gates.reward
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name and kind, and
# the requesters, quorum and rejecters it reads from data.json. Outsiders hold
# another gate's role, so wiring this gate to that gate's settings would let
# them through.
doc(action, actor, approvals, changes) := fx.doc("reward", "helpfulness", action, actor, approvals, changes)

# grace owns the asset here, so alice may request only through her role.
test_request_by_engineer_is_pending if {
	d := reward.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role reward-reviewer (have 0 of 1)"}}
}

test_request_by_outsider_denied if {
	d := reward.decision with input as doc("request", "dave", [], {"request": {"requested_by": "dave"}})
	d.deny == {"dave cannot request this gate for reward helpfulness v1: only its owner alice or a holder of role ml-engineer may; ask one of them to request it"}
	not d.allow
}

test_approve_by_reward_reviewer_allows if {
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := reward.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
	d == {
		"allow": false,
		"deny": {"dave does not hold role reward-reviewer and cannot approve this gate: ask a holder of role reward-reviewer"},
		"missing": {"1 more approval by role reward-reviewer (have 0 of 1)"},
	}
}

test_reject_by_reward_reviewer_allowed if {
	d := reward.decision with input as doc("reject", "carol", [fx.new("carol", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_outsider_denied if {
	d := reward.decision with input as doc("reject", "dave", [fx.new("dave", "reject")], {})
	d == {
		"allow": false,
		"deny": {"dave does not hold role reward-reviewer and cannot reject this gate: ask a holder of role reward-reviewer"},
		"missing": set(),
	}
}

test_wrong_subject_kind_denied if {
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {"subject": {"kind": "dataset"}})
	d.deny == {"the reward gate only governs reward subjects (got \"dataset\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {"gate": "run"})
	d.deny == {"input.gate must be \"reward\" for this policy (got \"run\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
	not d.allow
}

test_missing_gate_settings_denied if {
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the reward gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the reward gate: a policy maintainer must add one to data.json",
	}
	not d.allow
}

test_absent_input_denies if {
	not reward.decision.allow
	count(reward.decision.deny) > 0
	reward.decision.missing == set()
}
