package forgegov.gates.environment_test

import data.forgegov.gates.environment
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring (its name, kind and settings) and its
# own rules on the sandbox replay. Evidence of an environment whose three
# golden episodes all replayed, as the sandbox reports it; `changes` replaces
# parts of the whole document.
good := {
	"procedure": 1,
	"entry": "thermostat:Thermostat",
	"tolerance": 0,
	"max_turns": 4,
	"dependencies": {},
	"limits": {"timeout_s": 20, "memory_mb": 2048},
	"tools": {
		"offered": [{"name": "heat", "docstring": "Run the heater.", "parameters": {"minutes": {"type": "integer", "required": true}}}],
		"problem": null,
		"golden_calls": {"heat": 4},
	},
	"golden": {"episodes": 3, "reproduced": 3, "failures": []},
}

with_evidence(environment) := {"evidence": {"environment": environment}}

doc(action, actor, approvals, changes) := fx.doc(
	"environment", "thermostat", action, actor, approvals,
	object.union(with_evidence(good), changes),
)

environment_with(changes) := object.union(good, changes)

approve_with(evidence) := d if {
	# fx.doc, not doc: object.union merges deeply, and would put good's parts back.
	bare := fx.doc("environment", "thermostat", "approve", "carol", [fx.new("carol", "approve")], with_evidence(evidence))
	d := environment.decision with input as bare
}

test_request_by_engineer_is_pending if {
	d := environment.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role reward-reviewer (have 0 of 1)"}}
}

test_approve_by_reward_reviewer_allows if {
	d := environment.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := environment.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
	d.deny == {"dave does not hold role reward-reviewer and cannot approve this gate: ask a holder of role reward-reviewer"}
	not d.allow
}

test_wrong_subject_kind_denied if {
	d := environment.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {"subject": {"kind": "reward"}})
	d.deny == {"the environment gate only governs environment subjects (got \"reward\"): use the gate for that kind"}
}

test_missing_gate_settings_denied if {
	d := environment.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the environment gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the environment gate: a policy maintainer must add one to data.json",
	}
}

test_absent_input_denies if {
	not environment.decision.allow
	count(environment.decision.deny) > 0
}

test_a_rejection_needs_no_evidence if {
	bare := fx.doc("environment", "thermostat", "reject", "carol", [fx.new("carol", "reject")], {})
	environment.decision.allow with input as bare
}

test_no_replay_evidence_denied if {
	bare := fx.doc("environment", "thermostat", "approve", "carol", [fx.new("carol", "approve")], {})
	d := environment.decision with input as bare
	d.deny == {"environment thermostat v1 has no sandbox replay of its golden episodes in the evidence: report this input to the platform team"}
}

test_incomplete_replay_evidence_denied if {
	no_run := "environment thermostat v1 has no sandbox replay of its golden episodes in the evidence: report this input to the platform team"
	every broken in [
		{"golden": {"episodes": 3, "reproduced": 0}},
		{"tools": {"problem": null}},
		{"max_turns": "4"},
		{"golden": {"episodes": 3, "reproduced": 2, "failures": [{"episode": 1}]}},
	] {
		d := approve_with(object.union(object.remove(good, object.keys(broken)), broken))
		no_run in d.deny
		not d.allow
	}
}

test_a_differing_episode_denied if {
	failure := {"episode": 2, "at": "call 1 (heat)", "outcome": "differs", "expected": {"result": "21 degrees"}, "got": {"result": "22 degrees"}}
	d := approve_with(environment_with({"golden": {"episodes": 3, "reproduced": 2, "failures": [failure]}}))
	d.deny == {"golden episode 2 of environment thermostat v1 replayed differently at call 1 (heat): expected {\"result\": \"21 degrees\"}, got {\"result\": \"22 degrees\"}: make the environment deterministic or fix the episode, and register a new version"}
}

test_a_contained_failure_denied if {
	failure := {"episode": 1, "at": "call 2", "outcome": "timeout", "detail": "no answer within 20 s"}
	d := approve_with(environment_with({"golden": {"episodes": 3, "reproduced": 2, "failures": [failure]}}))
	d.deny == {"golden episode 1 of environment thermostat v1 did not replay in the sandbox (timeout at call 2: no answer within 20 s): fix the environment and register a new version"}
	not d.allow
}

test_tools_a_model_cannot_be_given_denied if {
	problem := "parameter p of tool heat is typed list; annotate it as one of int, float, str, bool"
	evidence := environment_with({"tools": {"offered": [], "problem": problem}, "golden": {"episodes": 3, "reproduced": 0, "failures": []}})
	d := approve_with(evidence)
	d.deny == {sprintf("environment thermostat v1 offers tools a model cannot be given (%s): fix its class and register a new version", [problem])}
}

test_no_tools_denied if {
	d := approve_with(environment_with({"tools": {"offered": [], "problem": null}}))
	d.deny == {"environment thermostat v1 offers no tool in the evidence: give its class a public method besides reset and get_reward, or report this input to the platform team"}
}

test_a_tool_no_golden_episode_calls_denied if {
	d := approve_with(environment_with({"tools": {"golden_calls": {"heat": 0}}}))
	d.deny == {"no golden episode of environment thermostat v1 calls its tool heat, so nothing shows what it does: add an episode that calls it to the golden file and register a new version"}
	uncounted := {"offered": good.tools.offered, "problem": null}
	e := approve_with(object.union(object.remove(good, ["tools"]), {"tools": uncounted}))
	e.deny == d.deny
}

test_too_few_golden_episodes_denied if {
	d := approve_with(environment_with({"golden": {"episodes": 2, "reproduced": 2, "failures": []}}))
	d.deny == {"environment thermostat v1 has 2 golden episodes; the policy needs at least 3: add episodes with the results and reward they must give to its golden file and register a new version"}
}

test_a_count_without_failures_denied if {
	d := approve_with(environment_with({"golden": {"episodes": 3, "reproduced": 1, "failures": []}}))
	d.deny == {"the sandbox replay of environment thermostat v1 reproduced 1 of 3 golden episodes and names no failure: report this input to the platform team"}
}

test_tolerance_bounded_by_data if {
	d := approve_with(environment_with({"tolerance": 0.5}))
	d.deny == {"environment thermostat v1 lets a golden reward differ by 0.5 from its expected value; the policy allows at most 0.001: lower tolerance in environment.toml and register a new version"}
	approve_with(environment_with({"tolerance": 0.001})).allow
}

test_turns_bounded_by_data if {
	d := approve_with(environment_with({"max_turns": 9}))
	d.deny == {"environment thermostat v1 lets an episode run 9 tool calls; the policy allows at most 8: lower max_turns in environment.toml and register a new version"}
	approve_with(environment_with({"max_turns": 8})).allow
}

test_without_environment_data_the_strictest_bounds_hold if {
	d := approve_with(good) with data.data.environments as {}
	d.deny == {"environment thermostat v1 lets an episode run 4 tool calls; the policy allows at most 1: lower max_turns in environment.toml and register a new version"}
}

test_a_missing_dependency_denied if {
	d := approve_with(environment_with({"dependencies": {"numpy": null}}))
	d.deny == {"environment thermostat v1 declares dependency numpy, which is not installed where environments run: install it there, or drop it from environment.toml"}
}
