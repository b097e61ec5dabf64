# METADATA
# title: forgegov dataset gate
# description: >-
#   Decides request, approve and reject actions on the dataset gate: a data
#   steward signs off a registered dataset version before training may use it.
#   Roles, requester roles, quorum and rejecters come from data.json.
package forgegov.gates.dataset

import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

settings := standard_gate.settings_of("dataset")

# deny and missing are partial sets so that rules on this gate's own evidence
# can add to them beside the standard ones. gate.document rather than input
# keeps the envelope checks firing when no input was sent at all.
deny contains msg if some msg in standard_gate.deny(gate.document, "dataset", settings)

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
	"deny": ["the dataset gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Dataset gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
