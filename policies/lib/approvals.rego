# METADATA
# title: forgegov approval helpers
# description: >-
#   Shared rules for who may approve or reject a gate, which approvals count
#   toward a quorum, and the deny and missing messages that explain why.
#   Every helper takes the input document as an argument so the gate packages
#   and the tests decide what they pass.
package forgegov.lib.approvals

import data.forgegov.lib.config

# The roles held by a name. Unknown names hold none rather than being an
# error, so an identity missing from data.json simply cannot act.
roles_of(name) := object.get(config.roles, name, [])

holds_any(name, wanted) if {
	some role in roles_of(name)
	role in wanted
}

# Takes the whole document: `not holds_any(inp.actor.name, ...)` would make
# the caller's body fail, not deny, when the actor has no name.
actor_holds_any(inp, wanted) if holds_any(inp.actor.name, wanted)

# Deny messages must tell the person whom to ask, so role lists are spelled
# out in a stable (sorted) order.
role_phrase(roles) := concat("", ["role ", role]) if {
	count(roles) == 1
	some role in roles
} else := concat("", ["one of the roles ", concat(", ", sort(roles))])

# The requester of a new request is the actor opening it; afterwards it is the
# name recorded on the open request.
requester(inp) := name if {
	name := inp.request.requested_by
} else := inp.actor.name

# Nanoseconds in one hour: max_age_hours is kept in hours in data.json
# because that is how reviewers think about approval freshness.
hour_ns := 3600000000000

# An approval older than max_age_hours before input.now no longer reflects a
# current review. An unparsable timestamp is treated as stale (fail closed).
within_max_age(inp, approval) if {
	signed := time.parse_rfc3339_ns(approval.signed_at)
	now := time.parse_rfc3339_ns(inp.now)
	signed >= now - (config.max_age_hours * hour_ns)
}

revoked_and_ignored(approval) if {
	approval.key_revoked == true
	not config.count_revoked_keys
}

# Reasons an approval is discounted, phrased for the missing message.
discount_reasons(inp, approval) := ({reason |
	revoked_and_ignored(approval)
	reason := sprintf("its key %v was revoked after signing", [object.get(approval, "key_id", "(unknown)")])
} | {reason |
	approval.evidence_current == false
	reason := "it was given for evidence that has changed since (a new check, an input withdrawn or replaced)"
}) | {reason |
	not within_max_age(inp, approval)
	reason := sprintf(
		"it was signed at %v, more than %v hours before %v",
		[object.get(approval, "signed_at", "(no time)"), config.max_age_hours, object.get(inp, "now", "(no time)")],
	)
}

# A live approval is one that is neither stale nor signed with a key we no
# longer trust. Only live approvals count, and only live approvals block the
# same person from approving again, so a reviewer whose approval expired (or
# whose key was rotated after a compromise) can renew it.
live(inp, approval) if count(discount_reasons(inp, approval)) == 0

counts_for(inp, approval, role) if {
	approval.verdict == "approve"
	role in roles_of(approval.approver)
	approval.approver != requester(inp)
	live(inp, approval)
}

# Distinct people, so one reviewer signing twice never fills two seats.
qualifying_approvers(inp, role) := {approval.approver |
	some approval in inp.approvals
	counts_for(inp, approval, role)
}

plural(1) := "approval"

plural(n) := "approvals" if n != 1

# One message per role still short of its quorum, plus one per discounted
# approval from a holder of that role who has not since renewed it, so the
# requester knows whether to wait for someone new or ask the same person to
# sign again. Explanations appear only while the role is short: once the
# quorum is met they must not hold the gate pending.
missing(inp, quorum) := {msg |
	some role, needed in quorum
	have := count(qualifying_approvers(inp, role))
	have < needed
	msg := sprintf(
		"%d more %s by role %s (have %d of %d)",
		[needed - have, plural(needed - have), role, have, needed],
	)
} | {msg |
	some role, needed in quorum
	count(qualifying_approvers(inp, role)) < needed
	some approval in inp.approvals
	approval.verdict == "approve"
	role in roles_of(approval.approver)
	not approval.approver in qualifying_approvers(inp, role)
	some reason in discount_reasons(inp, approval)
	msg := sprintf(
		"approval by %s does not count for role %s: %s; %s must approve again",
		[approval.approver, role, reason, approval.approver],
	)
}

# Separation of duties is checked over every approval on the request, not
# only the new one, so a bad record that slipped in earlier still blocks.
self_approval_denies(inp, roles) := {msg |
	some approval in inp.approvals
	approval.approver == requester(inp)
	msg := sprintf(
		"%s requested this approval and cannot approve it: ask a holder of %s",
		[approval.approver, role_phrase(roles)],
	)
}

duplicate_approval_denies(inp, roles) := {msg |
	some approval in inp.approvals
	live(inp, approval)
	name := approval.approver
	count([other |
		some other in inp.approvals
		other.approver == name
		live(inp, other)
	]) > 1
	msg := sprintf(
		"%s has already approved this request: ask another holder of %s",
		[name, role_phrase(roles)],
	)
}

separation_denies(inp, roles) := self_approval_denies(inp, roles) | duplicate_approval_denies(inp, roles)

# The signature layer hands us the actor's own new verdict; if it is absent or
# not the actor's, the input was not assembled by the gate and must not pass.
new_verdict_by_actor(inp, verdict) if {
	some approval in inp.approvals
	approval.new == true
	approval.approver == inp.actor.name
	approval.verdict == verdict
}

new_verdict_denies(inp, verdict) := {msg |
	not new_verdict_by_actor(inp, verdict)
	msg := sprintf(
		"input.approvals holds no new %s verdict signed by %v: submit it again through forgegov so it is signed and verified",
		[verdict, object.get(object.get(inp, "actor", {}), "name", "the actor")],
	)
}

# Denies for the approve action: the actor's own signed approval is present
# and the actor holds a role that the quorum asks for. Gates add
# separation_denies, which also applies to the approvals a request carries.
approve_denies(inp, quorum_roles) := new_verdict_denies(inp, "approve") | {msg |
	not actor_holds_any(inp, quorum_roles)
	msg := sprintf(
		"%s does not hold %s and cannot approve this gate: ask a holder of %s",
		[inp.actor.name, role_phrase(quorum_roles), role_phrase(quorum_roles)],
	)
}

# Denies for the reject action. Rejection ends the request, so it needs a
# rejecter role, and a requester may not reject their own request either.
reject_denies(inp, rejecters) := union({
	new_verdict_denies(inp, "reject"),
	{msg |
		not actor_holds_any(inp, rejecters)
		msg := sprintf(
			"%s does not hold %s and cannot reject this gate: ask a holder of %s",
			[inp.actor.name, role_phrase(rejecters), role_phrase(rejecters)],
		)
	},
	{msg |
		inp.actor.name == requester(inp)
		msg := sprintf(
			"%s requested this approval and cannot reject it: ask a holder of %s",
			[inp.actor.name, role_phrase(rejecters)],
		)
	},
})
