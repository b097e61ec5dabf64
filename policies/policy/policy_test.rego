package forgegov.gates.policy_test

import data.forgegov.gates.policy
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring and its one rule of its own: owning a
# proposal gives no right to request it.
doc(action, actor, approvals, changes) := fx.doc("policy", "house-rules", action, actor, approvals, changes)

test_request_by_policy_owner_is_pending if {
	d := policy.decision with input as doc("request", "dave", [], {"subject": {"owner": "dave", "state": "registered"}, "request": {"requested_by": "dave"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role policy-owner (have 0 of 1)"}}
}

test_request_by_its_owner_without_the_role_denied if {
	d := policy.decision with input as doc("request", "mallory", [], {"subject": {"owner": "mallory", "state": "registered"}, "request": {"requested_by": "mallory"}})
	d.deny == {"mallory cannot propose a policy: only a holder of role policy-owner may, whoever registered the bundle; ask one of them to propose it"}
	not d.allow
}

test_approve_by_another_policy_owner_allows if {
	d := policy.decision with input as doc("approve", "grace", [fx.new("grace", "approve")], {"request": {"requested_by": "dave"}})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_self_approval_denied if {
	d := policy.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"request": {"requested_by": "dave"}})
	not d.allow
	count(d.deny) > 0
}

test_approve_by_outsider_denied if {
	d := policy.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"request": {"requested_by": "dave"}})
	d.deny == {"bob does not hold role policy-owner and cannot approve this gate: ask a holder of role policy-owner"}
	not d.allow
}

test_reject_by_policy_owner_allowed if {
	d := policy.decision with input as doc("reject", "grace", [fx.new("grace", "reject")], {"request": {"requested_by": "dave"}})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_wrong_subject_kind_denied if {
	d := policy.decision with input as doc("approve", "grace", [fx.new("grace", "approve")], {"subject": {"kind": "dataset"}, "request": {"requested_by": "dave"}})
	d.deny == {"the policy gate only governs policy subjects (got \"dataset\"): use the gate for that kind"}
	not d.allow
}

test_absent_input_denies if {
	not policy.decision.allow
	count(policy.decision.deny) > 0
	policy.decision.missing == set()
}
