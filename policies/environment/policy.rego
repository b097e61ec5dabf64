# METADATA
# title: forgegov environment gate
# description: >-
#   Decides request, approve and reject actions on the environment gate: a
#   reward reviewer signs off a multi-turn environment (a simulator whose tools
#   a grpo run's model calls, and whose reward it optimises) before training
#   may use it, on the evidence of its golden episodes as forgegov replayed
#   them in the sandbox against the registered bytes. The tools must be ones a
#   model can be offered, every episode must replay to its recorded results and
#   reward, every declared dependency must be installed, and the tolerance,
#   number of episodes and turns per episode are bounded by data.json
#   (environments). Roles, requester roles, quorum and rejecters come from
#   data.json.
package forgegov.gates.environment

import data.forgegov.lib.config
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

inp := gate.document

settings := standard_gate.settings_of("environment")

# Evidence is read when a review is asked for and when it is given; a
# rejection needs none.
evidence_actions := {"request", "approve"}

subject_name := gate.describe(object.get(inp, "subject", {}))

evidence := object.get(object.get(inp, "evidence", {}), "environment", {})

golden := object.get(evidence, "golden", {})

# Absent from data.json: at least one episode, no tolerance, one turn.
min_episodes := object.get(config.environments, "min_golden_episodes", 1)

max_tolerance := object.get(config.environments, "max_tolerance", 0)

max_turns := object.get(config.environments, "max_turns", 1)

# Evidence counts as a replay only when it has every part the rules below
# read; anything less denies as "no sandbox replay" rather than letting a rule
# not fire.
ran(environment) if {
	is_number(environment.golden.episodes)
	is_number(environment.golden.reproduced)
	is_array(environment.golden.failures)
	every failure in environment.golden.failures {
		is_string(failure.outcome)
	}
	is_number(environment.tolerance)
	is_number(environment.max_turns)
	is_object(environment.dependencies)
	is_array(environment.tools.offered)
}

deny contains msg if some msg in standard_gate.deny(gate.document, "environment", settings)

deny contains msg if {
	inp.action in evidence_actions
	not ran(evidence)
	msg := sprintf(
		"%s has no sandbox replay of its golden episodes in the evidence: report this input to the platform team",
		[subject_name],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	is_string(evidence.tools.problem)
	msg := sprintf(
		"%s offers tools a model cannot be given (%s): fix its class and register a new version",
		[subject_name, evidence.tools.problem],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	count(evidence.tools.offered) == 0
	not is_string(evidence.tools.problem)
	msg := sprintf(
		"%s offers no tool in the evidence: give its class a public method besides reset and get_reward, or report this input to the platform team",
		[subject_name],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	some tool in evidence.tools.offered
	object.get(object.get(evidence.tools, "golden_calls", {}), tool.name, 0) == 0
	msg := sprintf(
		"no golden episode of %s calls its tool %v, so nothing shows what it does: add an episode that calls it to the golden file and register a new version",
		[subject_name, tool.name],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	golden.episodes < min_episodes
	msg := sprintf(
		"%s has %d golden episodes; the policy needs at least %d: add episodes with the results and reward they must give to its golden file and register a new version",
		[subject_name, golden.episodes, min_episodes],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some failure in golden.failures
	failure.outcome == "differs"
	msg := sprintf(
		"golden episode %v of %s replayed differently at %v: expected %v, got %v: make the environment deterministic or fix the episode, and register a new version",
		[
			object.get(failure, "episode", "?"), subject_name, object.get(failure, "at", "an unnamed step"),
			object.get(failure, "expected", "?"), object.get(failure, "got", "?"),
		],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some failure in golden.failures
	failure.outcome != "differs"
	msg := sprintf(
		"golden episode %v of %s did not replay in the sandbox (%v at %v: %v): fix the environment and register a new version",
		[
			object.get(failure, "episode", "?"), subject_name, failure.outcome,
			object.get(failure, "at", "an unnamed step"), object.get(failure, "detail", "no detail"),
		],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	golden.reproduced != golden.episodes
	count(golden.failures) == 0
	not is_string(evidence.tools.problem)
	msg := sprintf(
		"the sandbox replay of %s reproduced %v of %v golden episodes and names no failure: report this input to the platform team",
		[subject_name, golden.reproduced, golden.episodes],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	evidence.tolerance > max_tolerance
	msg := sprintf(
		"%s lets a golden reward differ by %v from its expected value; the policy allows at most %v: lower tolerance in environment.toml and register a new version",
		[subject_name, evidence.tolerance, max_tolerance],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	evidence.max_turns > max_turns
	msg := sprintf(
		"%s lets an episode run %v tool calls; the policy allows at most %v: lower max_turns in environment.toml and register a new version",
		[subject_name, evidence.max_turns, max_turns],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some name, version in evidence.dependencies
	version == null
	msg := sprintf(
		"%s declares dependency %s, which is not installed where environments run: install it there, or drop it from environment.toml",
		[subject_name, name],
	)
}

missing contains msg if some msg in standard_gate.missing(gate.document, settings.quorum)

default allow := false

allow if {
	count(deny) == 0
	count(missing) == 0
}

# Never reached while allow has its default; it keeps the answer well-formed
# (and denying) should a later edit leave decision undefined.
default decision := {
	"allow": false,
	"deny": ["the environment gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Environment gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
