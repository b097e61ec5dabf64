# METADATA
# title: forgegov administrative acts
# description: >-
#   Decides who may enrol a member, revoke an identity or rotate its key, who
#   may redact an audit entry's payload, and what may never be redacted. Each act is a statement its actor
#   signed; settings per act live in data.json under admin.
# scope: package
# schemas:
#   - input: schema.admin_input
package forgegov.admin

import data.forgegov.lib.approvals
import data.forgegov.lib.config

acts := {"identity.enrol", "identity.revoke", "identity.rotate", "audit.redact"}

identity_acts := {"identity.revoke", "identity.rotate"}

# An absent input still gets an answer that denies (see lib/gate.rego).
default doc := {}

doc := input

settings := object.get(config.admin, doc.act, {})

roles := object.get(settings, "roles", [])

permitted if approvals.holds_any(doc.actor.name, roles)

# Anyone may revoke or rotate their own key (a lost laptop), when the policy
# says so.
permitted if {
	doc.act in identity_acts
	object.get(settings, "self", false) == true
	doc.target.name == doc.actor.name
}

# A predicate over the whole document: `not doc.act in acts` would evaluate the
# absent field before the negation and fail instead of denying.
act_known(d) if d.act in acts

deny contains msg if {
	not act_known(doc)
	msg := sprintf("unknown administrative act %v: forgegov knows %s", [object.get(doc, "act", null), concat(", ", sort(acts))])
}

deny contains msg if {
	doc.act in acts
	not permitted
	msg := sprintf(
		"%v may not %s: only a holder of %s may%s; ask one of them",
		[
			object.get(object.get(doc, "actor", {}), "name", "(nobody)"), doc.act, approvals.role_phrase(roles),
			self_clause,
		],
	)
}

default self_clause := ""

self_clause := ", or the identity itself" if {
	doc.act in identity_acts
	object.get(settings, "self", false) == true
}

# Enrolment binds a key to a person: when policy data asks for it, only a name
# the policy already gives roles to (added by a policy change, itself decided
# by the policy gate) may be enrolled, so a role can never go to whoever claims
# its name first.
deny contains msg if {
	doc.act == "identity.enrol"
	object.get(settings, "listed_only", false) == true
	not doc.target.name in object.keys(config.roles)
	msg := sprintf(
		"%v is not named in the policy's roles: enrol only people the policy lists; a policy owner adds %v to policies/data/data.json first (forgegov policy propose)",
		[doc.target.name, doc.target.name],
	)
}

deny contains msg if {
	doc.act == "audit.redact"
	some prefix in object.get(settings, "never_prefixes", [])
	startswith(doc.target.action, prefix)
	msg := sprintf(
		"entry %v is a %s record, which policy data never lets anyone redact (%s*): the log's decisions and runs must stay provable",
		[doc.target.seq, doc.target.action, prefix],
	)
}

default allow := false

allow if count(deny) == 0

# METADATA
# title: Administrative act decision
# description: The answer forgegov asks OPA for; missing is always empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": set()}
