package forgegov.gates.reward_test

import data.forgegov.gates.reward
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name and kind, and
# the requesters, quorum and rejecters it reads from data.json. Outsiders hold
# another gate's role, so wiring this gate to that gate's settings would let
# them through.
# Evidence of a reward whose three golden examples all reproduced, as the
# sandbox run reports it; `changes` replaces parts of the whole document.
good := {
	"procedure": 1,
	"entry": "reward:score",
	"tolerance": 0,
	"dependencies": {"numpy": "2.1.0"},
	"limits": {"timeout_s": 20, "memory_mb": 2048},
	"golden": {"examples": 3, "reproduced": 3, "failures": []},
}

with_evidence(reward) := {"evidence": {"reward": reward}}

doc(action, actor, approvals, changes) := fx.doc(
	"reward", "helpfulness", action, actor, approvals,
	object.union(with_evidence(good), changes),
)

reward_with(changes) := object.union(good, changes)

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

test_reproduced_golden_examples_allow_approval if {
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
	d.allow
}

test_no_sandbox_evidence_denied if {
	bare := fx.doc("reward", "helpfulness", "approve", "carol", [fx.new("carol", "approve")], {})
	d := reward.decision with input as bare
	d.deny == {"reward helpfulness v1 has no sandbox run of its golden examples in the evidence: report this input to the platform team"}
}

test_a_rejection_needs_no_evidence if {
	bare := fx.doc("reward", "helpfulness", "reject", "carol", [fx.new("carol", "reject")], {})
	reward.decision.allow with input as bare
}

test_a_wrong_score_denied if {
	failure := {"example": 2, "outcome": "ok", "expected": 1, "got": 0.5, "detail": ""}
	evidence := reward_with({"golden": {"examples": 3, "reproduced": 2, "failures": [failure]}})
	d := reward.decision with input as doc("request", "alice", [], with_evidence(evidence))
	d.deny == {"golden example 2 of reward helpfulness v1 scored 0.5 in the sandbox, not the expected 1: fix the reward or the example and register a new version"}
}

test_a_contained_failure_denied if {
	failure := {"example": 1, "outcome": "timeout", "expected": 1, "got": null, "detail": "no answer within 20 s"}
	evidence := reward_with({"golden": {"examples": 3, "reproduced": 2, "failures": [failure]}})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
	d.deny == {"golden example 1 of reward helpfulness v1 did not run to a score in the sandbox (timeout: no answer within 20 s): fix the reward and register a new version"}
	not d.allow
}

test_too_few_golden_examples_denied if {
	evidence := reward_with({"golden": {"examples": 2, "reproduced": 2, "failures": []}})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
	d.deny == {"reward helpfulness v1 has 2 golden examples; the policy needs at least 3: add inputs with the scores they must get to its golden file and register a new version"}
}

test_tolerance_bounded_by_data if {
	loose := reward_with({"tolerance": 0.5})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(loose))
	d.deny == {"reward helpfulness v1 lets a golden score differ by 0.5 from its expected value; the policy allows at most 0.001: lower tolerance in reward.toml and register a new version"}
	tight := reward_with({"tolerance": 0.001})
	reward.decision.allow with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(tight))
}

test_without_reward_data_no_tolerance_passes if {
	loose := reward_with({"tolerance": 0.0001})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(loose))
		with data.data.rewards as {}
	count(d.deny) == 1
}

test_a_missing_dependency_denied if {
	evidence := reward_with({"dependencies": {"numpy": "2.1.0", "rdkit": null}})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
	d.deny == {"reward helpfulness v1 declares dependency rdkit, which is not installed where rewards run: install it there, or drop it from reward.toml"}
}

# Found by a review: evidence missing a part the rules read let them not fire.
# Anything less than a whole run denies.
test_incomplete_sandbox_evidence_denied if {
	no_run := "reward helpfulness v1 has no sandbox run of its golden examples in the evidence: report this input to the platform team"
	every broken in [
		{"golden": {"examples": 3, "reproduced": 0}},
		{"golden": good.golden, "tolerance": "0"},
		{"golden": good.golden, "dependencies": null},
		{"golden": {"examples": 3, "reproduced": 2, "failures": [{"example": 1}]}},
	] {
		evidence := object.union(object.remove(good, ["golden"]), broken)
		bare := fx.doc("reward", "helpfulness", "approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
		d := reward.decision with input as bare
		no_run in d.deny
		not d.allow
	}
}

test_a_count_without_failures_denied if {
	evidence := reward_with({"golden": {"examples": 3, "reproduced": 0, "failures": []}})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
	d.deny == {"the sandbox run of reward helpfulness v1 reproduced 0 of 3 golden examples and names no failure: report this input to the platform team"}
}

test_a_failure_without_detail_still_denies if {
	failure := {"example": 1, "outcome": "crashed", "expected": 1, "got": null}
	evidence := reward_with({"golden": {"examples": 3, "reproduced": 2, "failures": [failure]}})
	d := reward.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
	d.deny == {"golden example 1 of reward helpfulness v1 did not run to a score in the sandbox (crashed: no detail): fix the reward and register a new version"}
}
