# METADATA
# title: forgegov reward gate
# description: >-
#   Decides request, approve and reject actions on the reward gate: a reward
#   reviewer signs off a reward function version before training may optimise
#   it, on the evidence of its golden examples as forgegov re-ran them in the
#   sandbox against the registered bytes. Every example must reproduce its
#   score, nothing may crash, hang or return a non-score, every declared
#   dependency must be installed, and the tolerance and number of examples are
#   bounded by data.json (rewards). Roles, requester roles, quorum and
#   rejecters come from data.json.
package forgegov.gates.reward

import data.forgegov.lib.config
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

inp := gate.document

settings := standard_gate.settings_of("reward")

# Evidence is read when a review is asked for and when it is given; a
# rejection needs none.
evidence_actions := {"request", "approve"}

subject_name := gate.describe(object.get(inp, "subject", {}))

evidence := object.get(object.get(inp, "evidence", {}), "reward", {})

golden := object.get(evidence, "golden", {})

# Absent from data.json: at least one example, and no tolerance at all.
min_examples := object.get(config.rewards, "min_golden_examples", 1)

max_tolerance := object.get(config.rewards, "max_tolerance", 0)

# Evidence counts as a run only when it has every part the rules below read;
# anything less denies as "no sandbox run" rather than letting a rule not fire.
ran(reward) if {
	is_number(reward.golden.examples)
	is_number(reward.golden.reproduced)
	is_array(reward.golden.failures)
	every failure in reward.golden.failures {
		is_string(failure.outcome)
	}
	is_number(reward.tolerance)
	is_object(reward.dependencies)
}

score(value) := "no score" if value == null

score(value) := sprintf("%v", [value]) if value != null

# deny and missing are partial sets so that rules on this gate's own evidence
# can add to them beside the standard ones. gate.document rather than input
# keeps the envelope checks firing when no input was sent at all.
deny contains msg if some msg in standard_gate.deny(gate.document, "reward", settings)

deny contains msg if {
	inp.action in evidence_actions
	not ran(evidence)
	msg := sprintf(
		"%s has no sandbox run of its golden examples in the evidence: report this input to the platform team",
		[subject_name],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	golden.examples < min_examples
	msg := sprintf(
		"%s has %d golden examples; the policy needs at least %d: add inputs with the scores they must get to its golden file and register a new version",
		[subject_name, golden.examples, min_examples],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some failure in golden.failures
	failure.outcome == "ok"
	msg := sprintf(
		"golden example %d of %s scored %s in the sandbox, not the expected %s: fix the reward or the example and register a new version",
		[failure.example, subject_name, score(failure.got), score(failure.expected)],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some failure in golden.failures
	failure.outcome != "ok"
	msg := sprintf(
		"golden example %v of %s did not run to a score in the sandbox (%v: %v): fix the reward and register a new version",
		[object.get(failure, "example", "?"), subject_name, failure.outcome, object.get(failure, "detail", "no detail")],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	golden.reproduced != golden.examples
	count(golden.failures) == 0
	msg := sprintf(
		"the sandbox run of %s reproduced %v of %v golden examples and names no failure: report this input to the platform team",
		[subject_name, golden.reproduced, golden.examples],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	ran(evidence)
	evidence.tolerance > max_tolerance
	msg := sprintf(
		"%s lets a golden score differ by %v from its expected value; the policy allows at most %v: lower tolerance in reward.toml and register a new version",
		[subject_name, evidence.tolerance, max_tolerance],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some name, version in evidence.dependencies
	version == null
	msg := sprintf(
		"%s declares dependency %s, which is not installed where rewards run: install it there, or drop it from reward.toml",
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
	"deny": ["the reward gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Reward gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
