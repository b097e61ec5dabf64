# METADATA
# title: forgegov policy gate
# description: >-
#   Decides request, approve and reject actions on a proposed policy bundle
#   (with the OPA build pinned to decide it): the policy in force decides who
#   may change it. Unlike other gates, owning the proposal is not enough to
#   request it: only a holder of a requester role may, so that registering a
#   bundle gives nobody a say over the policy.
#   Roles, requester roles, quorum and rejecters come from data.json.
package forgegov.gates.policy

import data.forgegov.lib.approvals
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

settings := standard_gate.settings_of("policy")

deny contains msg if some msg in standard_gate.deny(gate.document, "policy", settings)

deny contains msg if {
	gate.document.action == "request"
	not approvals.actor_holds_any(gate.document, settings.requesters)
	msg := sprintf(
		"%s cannot propose a policy: only a holder of %s may, whoever registered the bundle; ask one of them to propose it",
		[gate.document.actor.name, approvals.role_phrase(settings.requesters)],
	)
}

deny contains msg if {
	gate.document.action == "withdraw"
	msg := "a policy in force is not withdrawn: propose the policy that should replace it"
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
	"deny": ["the policy gate reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Policy gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
