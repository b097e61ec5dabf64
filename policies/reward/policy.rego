# METADATA
# title: forgegov reward gate
# description: >-
#   Decides request, approve and reject actions on the reward gate: a reward
#   reviewer signs off a reward function version before training may optimise
#   it.
#   Roles, requester roles, quorum and rejecters come from data.json.
package forgegov.gates.reward

import data.forgegov.lib.approvals
import data.forgegov.lib.config
import data.forgegov.lib.gate

settings := config.gates.reward

quorum_roles := object.keys(settings.quorum)

# An empty or absent quorum would let a request approve itself.
quorum_configured if count(settings.quorum) > 0

# Envelope checks get gate.document rather than input so they still fire
# when no input was sent at all.
deny contains msg if some msg in gate.envelope_denies(gate.document, "reward", "reward")

deny contains msg if {
	input.action == "request"
	some msg in gate.request_denies(input, settings.requesters)
}

deny contains msg if {
	input.action == "request"
	some msg in gate.state_denies(input)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not quorum_configured
	msg := "policy data sets no quorum for the reward gate: a policy maintainer must add one to data.json"
}

deny contains msg if {
	input.action in {"request", "approve"}
	some msg in approvals.separation_denies(input, quorum_roles)
}

deny contains msg if {
	input.action == "approve"
	some msg in approvals.approve_denies(input, quorum_roles)
}

deny contains msg if {
	input.action == "reject"
	some msg in approvals.reject_denies(input, settings.rejecters)
}

# A request is pending until its quorum is met; a rejection needs no quorum,
# it only has to come from a rejecter.
missing contains msg if {
	input.action in {"request", "approve"}
	some msg in approvals.missing(input, settings.quorum)
}

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
