# METADATA
# title: forgegov administrative acts
# description: >-
#   Decides who may enrol a member, revoke an identity or rotate its key, who
#   may redact an audit entry's payload, and what may never be redacted; who
#   may start a job (train an approved run, evaluate a candidate), how many in
#   a window, and who may stop one; who may fetch which asset's bytes from the
#   team's store. Each act is a statement its actor signed;
#   settings per act live in data.json under admin.
# scope: package
# schemas:
#   - input: schema.admin_input
package forgegov.admin

import data.forgegov.lib.approvals
import data.forgegov.lib.config

acts := {
	"identity.enrol", "identity.revoke", "identity.rotate", "audit.redact", "job.start", "job.cancel",
	"asset.fetch",
}

identity_acts := {"identity.revoke", "identity.rotate"}

# An absent input still gets an answer that denies (see lib/gate.rego).
default doc := {}

doc := input

settings := object.get(config.admin, doc.act, {})

# A job's settings depend on its kind (training and evaluating are asked of
# different people), a fetch's on the kind of asset.
kinded_acts := {"job.start", "asset.fetch"}

subject_kind := doc.target.kind if doc.act == "job.start"

subject_kind := doc.target.asset.kind if doc.act == "asset.fetch"

kind_settings := object.get(object.get(settings, "kinds", {}), subject_kind, {})

default roles := []

roles := object.get(settings, "roles", []) if {
	doc.act in acts
	not doc.act in kinded_acts
}

roles := object.get(kind_settings, "roles", []) if doc.act in kinded_acts

# Some kinds of asset any member may read, and some data by its
# classification (public data, say).
permitted if {
	doc.act == "asset.fetch"
	object.get(kind_settings, "anyone", false) == true
}

permitted if {
	doc.act == "asset.fetch"
	doc.target.asset.classification in object.get(kind_settings, "open_classifications", [])
}

permitted if approvals.holds_any(doc.actor.name, roles)

# Whoever asked the run gate for a run may train it once it is approved, when
# policy data says so: their request is what the approvers agreed to.
permitted if {
	doc.act == "job.start"
	doc.target.kind == "run"
	object.get(kind_settings, "requester", false) == true
	doc.target.run.requested_by == doc.actor.name
}

# Whoever started a job may stop it, when policy data says so.
permitted if {
	doc.act == "job.cancel"
	object.get(settings, "self", false) == true
	doc.target.started_by == doc.actor.name
}

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
			object.get(object.get(doc, "actor", {}), "name", "(nobody)"), act_phrase, approvals.role_phrase(roles),
			self_clause,
		],
	)
}

default act_phrase := ""

act_phrase := doc.act if not doc.act in kinded_acts

act_phrase := sprintf("start a job of kind %v", [object.get(doc.target, "kind", null)]) if doc.act == "job.start"

act_phrase := sprintf("fetch %v (%v)", [doc.target.asset.label, doc.target.asset.classification]) if {
	doc.act == "asset.fetch"
}

default self_clause := ""

self_clause := ", or the identity itself" if {
	doc.act in identity_acts
	object.get(settings, "self", false) == true
}

self_clause := ", or who asked the run gate for the run" if {
	doc.act == "job.start"
	doc.target.kind == "run"
	object.get(kind_settings, "requester", false) == true
}

self_clause := sprintf(", or anyone for %s data", [concat(" or ", open)]) if {
	doc.act == "asset.fetch"
	open := object.get(kind_settings, "open_classifications", [])
	count(open) > 0
}

self_clause := ", or who started the job" if {
	doc.act == "job.cancel"
	object.get(settings, "self", false) == true
}

# A job trains only an approved run and evaluates only on approved suites,
# and at least one. Written as positive predicates, negated: a missing state
# or suite list must deny, not make the rule undefined.
run_approved if doc.target.run.state == "approved"

suite_approved(suite) if suite.state == "approved"

deny contains msg if {
	doc.act == "job.start"
	doc.target.kind == "run"
	not run_approved
	msg := sprintf(
		"%v is %v: a run is trained only once the run gate approved it; ask for approval first",
		[object.get(object.get(doc.target, "run", {}), "label", "the run"), object.get(object.get(doc.target, "run", {}), "state", "of no known state")],
	)
}

deny contains msg if {
	doc.act == "job.start"
	doc.target.kind == "evaluation"
	count(object.get(doc.target, "suites", [])) == 0
	msg := "an evaluation names at least one suite approved at the suite gate: add --suite SUITE"
}

deny contains msg if {
	doc.act == "job.start"
	doc.target.kind == "evaluation"
	some suite in object.get(doc.target, "suites", [])
	not suite_approved(suite)
	label := object.get(suite, "label", "(unnamed)")
	msg := sprintf(
		"suite %v is %v: an evaluation runs only suites approved at the suite gate; request its approval (forgegov request %v --gate suite --as NAME)",
		[label, object.get(suite, "state", "of no known state"), label],
	)
}

# A quota per member: the starts the log holds for the actor within the
# window, this one included, at most per_window.jobs. Without per_window,
# starts are not counted; a window forgegov cannot show (over the 168 hours
# of starts it sends), an unreadable time or a malformed setting denies.
window := object.get(settings, "per_window", {})

window_valid if {
	is_number(window.hours)
	window.hours > 0
	window.hours <= 168
	is_number(window.jobs)
	window.jobs >= 1
}

recent_starts := [t |
	some t in object.get(doc.target, "recent", [])
	time.parse_rfc3339_ns(doc.now) - time.parse_rfc3339_ns(t) < window.hours * 3600000000000
]

readable_time(t) if time.parse_rfc3339_ns(t)

deny contains msg if {
	doc.act == "job.start"
	object.get(settings, "per_window", null) != null
	not window_valid
	msg := "admin[\"job.start\"].per_window in policy data needs hours (1 to 168) and jobs (at least 1): a policy owner corrects policies/data/data.json"
}

deny contains msg if {
	doc.act == "job.start"
	some t in array.concat([object.get(doc, "now", null)], object.get(doc.target, "recent", []))
	not readable_time(t)
	msg := sprintf("the job's time or a recent start's time (%v) is not RFC 3339: the start cannot be counted; report this to the server's operator", [t])
}

deny contains msg if {
	doc.act == "job.start"
	window_valid
	count(recent_starts) >= window.jobs
	msg := sprintf(
		"%v started %d jobs in the last %v hours, the most policy allows: ask again later, or ask a policy owner to raise admin[\"job.start\"].per_window in policies/data/data.json",
		[doc.actor.name, count(recent_starts), window.hours],
	)
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

# Some acts hand out authority (a key bound to a name), so policy data may ask
# for more than one signature: the act is carried out once `quorum` distinct
# holders of its roles signed the very same act on the very same target; until
# then it waits (missing). forgegov shows the policy the earlier signers it
# found in the log (cosigners). Acting on oneself needs no second signer.
default quorum := 1

quorum := object.get(settings, "quorum", 1) if not doc.act in kinded_acts

# A kind may ask for its own quorum (a dataset's fetch, say); the act's applies otherwise.
quorum := object.get(kind_settings, "quorum", object.get(settings, "quorum", 1)) if doc.act in kinded_acts

quorum_valid if {
	is_number(quorum)
	quorum >= 1
	quorum == round(quorum)
}

self_act if {
	doc.act in identity_acts
	object.get(settings, "self", false) == true
	doc.target.name == doc.actor.name
}

signers := {doc.actor.name} | {c.name | some c in object.get(doc, "cosigners", [])}

counted := {name |
	some name in signers
	approvals.holds_any(name, roles)
}

deny contains msg if {
	doc.act in acts
	not quorum_valid
	msg := sprintf("admin[%q].quorum in policy data must be a whole number of at least 1: a policy owner corrects policies/data/data.json", [doc.act])
}

missing contains msg if {
	doc.act in acts
	quorum_valid
	quorum > 1
	not self_act
	count(counted) < quorum
	msg := sprintf(
		"%v needs the signatures of %d holders of %s on the same act; signed so far by %s: another of them signs it too",
		[doc.act, quorum, approvals.role_phrase(roles), concat(", ", sort(counted))],
	)
}

default allow := false

allow if {
	count(deny) == 0
	count(missing) == 0
}

# METADATA
# title: Administrative act decision
# description: >-
#   The answer forgegov asks OPA for: allowed, denied with reasons, or waiting
#   for more signatures (missing, only when nothing denies).
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing_unless_denied}

missing_unless_denied := missing if count(deny) == 0

missing_unless_denied := set() if count(deny) > 0
