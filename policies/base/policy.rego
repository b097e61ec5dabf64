# METADATA
# title: forgegov base gate
# description: >-
#   Decides request, approve and reject actions on the base gate: an ML lead
#   approves a registered checkpoint for customisation before any training run
#   may start from it. The gate is named base but governs checkpoint subjects;
#   roles, quorum, rejecters and eligible stages come from data.json.
package forgegov.gates.base

import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

inp := gate.document

settings := standard_gate.settings_of("base")

# A list in data.json, or nothing: a string would count its characters.
eligible_stages := stages if {
	stages := settings.eligible_stages
	is_array(stages)
	count(stages) > 0
} else := []

# The stage is checked when a review is asked for and when it is given; a
# rejection needs no eligible stage.
evidence_actions := {"request", "approve"}

# A predicate over the whole document, as in lib/gate.rego: `not x in y` with
# the stage absent would fail the rule body instead of denying.
stage_eligible(doc) if doc.subject.stage in eligible_stages

# deny and missing are partial sets so that this gate's own rules add to the
# standard ones. gate.document rather than input keeps the envelope checks
# firing when no input was sent at all.
deny contains msg if some msg in standard_gate.deny_for_kind(inp, "base", "checkpoint", settings)

deny contains msg if {
	inp.action in evidence_actions
	count(eligible_stages) > 0
	not stage_eligible(inp)
	msg := sprintf(
		"%s is at stage %s and cannot be approved for customisation: only a checkpoint at one of the stages %s can be a training run's starting point; register the checkpoint with --stage set to the stage it was trained to",
		[
			gate.describe(object.get(inp, "subject", {})), gate.shown(object.get(inp, "subject", {}), "stage"),
			concat(", ", eligible_stages),
		],
	)
}

# Without eligible stages no checkpoint could be judged: deny rather than pass.
deny contains msg if {
	inp.action in evidence_actions
	count(eligible_stages) == 0
	msg := "policy data sets no eligible_stages for the base gate: a policy maintainer must add them to data.json"
}

missing contains msg if some msg in standard_gate.missing(inp, settings.quorum)

default allow := false

allow if {
	count(deny) == 0
	count(missing) == 0
}

# Never reached while allow has its default; it keeps the answer well-formed
# (and denying) should a later edit leave decision undefined.
default decision := {
	"allow": false,
	"deny": ["the base gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Base gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty. On allow the checkpoint is approved for
#   customisation: runs may name it as their base.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
