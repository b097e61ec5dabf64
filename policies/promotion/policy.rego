# METADATA
# title: forgegov promotion gate
# description: >-
#   Decides request, approve and reject actions on promoting a checkpoint to a
#   release target. Each target names the release it must be promoted from and
#   its own quorum; eligible stages and roles come from data.json.
package forgegov.gates.promotion

import data.forgegov.lib.config
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

settings := config.gates.promotion

target := input.request.target

target_settings := settings.targets[target]

# Positive predicates, negated below: negating an expression that mentions
# an absent reference directly (`not x in target_settings.from` with no
# target) makes the rule body fail rather than deny, which would fail open.
target_configured if count(target_settings.quorum) > 0

release_eligible if input.subject.release in target_settings.from

stage_eligible if input.subject.stage in settings.eligible_stages

# Envelope checks get gate.document rather than input so they still fire
# when no input was sent at all.
deny contains msg if some msg in gate.envelope_denies(gate.document, "promotion", "checkpoint")

deny contains msg if {
	input.action == "request"
	some msg in gate.request_denies(input, settings.requesters)
}

# The target and the checkpoint's position are checked again at approval
# time: a checkpoint may have moved since the request was opened, and an
# approval must never promote it past a release it skipped.
deny contains msg if {
	input.action in {"request", "approve"}
	not target_configured
	msg := sprintf(
		"promotion target %s is not configured with a quorum: request one of %s",
		[gate.shown(object.get(input, "request", {}), "target"), concat(", ", sort(object.keys(object.get(settings, "targets", {}))))],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	target_configured
	not release_eligible
	msg := sprintf(
		"%s is at release %v and must be in %s before promotion to %s: promote it there first",
		[
			gate.describe(input.subject), object.get(input.subject, "release", null),
			concat(" or ", sort(target_settings.from)), target,
		],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not stage_eligible
	msg := sprintf(
		"%s is at stage %v and cannot be promoted: only %s checkpoints can; finish training to one of those stages first",
		[
			gate.describe(object.get(input, "subject", {})), object.get(object.get(input, "subject", {}), "stage", null),
			concat(" or ", sort(object.get(settings, "eligible_stages", []))),
		],
	)
}

# Who may approve or reject is decided as on the standard gates; only the
# quorum differs, coming from the request's target.
# Lineage: a checkpoint reaches a release only as the candidate of a completed,
# approved training run whose signed provenance verifies, or as a checkpoint
# approved at the base gate; one rejected at the base gate never does.
produced_by_verified_run if {
	run := input.evidence.lineage.run
	run.status == "completed"
	run.approved == true
	run.provenance.verified == true
}

approved_at_base_gate if input.subject.state == "approved"

deny contains msg if {
	input.action in {"request", "approve"}
	some withdrawn in input.evidence.lineage.run.withdrawn_inputs
	msg := sprintf(
		"%s was trained on %s, whose approval was withdrawn: it cannot be promoted; train again on approved inputs",
		[gate.describe(input.subject), withdrawn],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	input.subject.state == "rejected"
	msg := sprintf(
		"%s was rejected at the base gate and cannot be promoted: train or register a new version",
		[gate.describe(input.subject)],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	input.subject.state != "rejected"
	not produced_by_verified_run
	not approved_at_base_gate
	msg := sprintf(
		"%s %s: only the candidate of a completed, approved training run with verifying provenance, or a checkpoint approved at the base gate, can be promoted",
		[gate.describe(input.subject), lineage_problem],
	)
}

default lineage_problem := "was produced by no governed training run and is not approved at the base gate"

lineage_problem := sprintf(
	"was produced by run %s, which is %s, %s by the run gate, with provenance that %s",
	[
		run.id, run.status, approval_word(run.approved),
		provenance_word(run.provenance),
	],
) if {
	run := input.evidence.lineage.run
	is_object(run)
}

approval_word(true) := "approved"

approval_word(false) := "not approved"

provenance_word(p) := "verifies" if p.verified == true

provenance_word(p) := sprintf("does not verify (%s)", [p.problem]) if p.verified == false

# The mixture the run trained on: a role the model must keep (general, replay)
# may fall short of the share the run gate approved only by the tolerance
# policy data states; beyond it, the candidate is not what was approved.
deny contains msg if {
	input.action in {"request", "approve"}
	some role, tolerance in object.get(settings, "mixture_tolerance", {})
	shares := input.evidence.lineage.run.mixture[role]
	shares.realised_share < shares.planned_share - tolerance
	msg := sprintf(
		"%s trained on %v%% %s data where its run was approved for %v%% (tolerance %v points): it is not the model that was approved; train again with a recipe whose realised shares meet the plan",
		[
			gate.describe(input.subject), round(shares.realised_share * 1000) / 10, role,
			round(shares.planned_share * 1000) / 10, tolerance * 100,
		],
	)
}

deny contains msg if {
	input.action == "withdraw"
	msg := "a release is not withdrawn through the promotion gate: withdraw the checkpoint at the base gate, or the data or run it came from"
}

deny contains msg if some msg in standard_gate.approval_denies(input, target_settings.quorum)

deny contains msg if some msg in standard_gate.rejection_denies(input, settings.rejecters)

missing contains msg if some msg in standard_gate.missing(input, target_settings.quorum)

default allow := false

allow if {
	count(deny) == 0
	count(missing) == 0
}

# Never reached while allow has its default; it keeps the answer well-formed
# (and denying) should a later edit leave decision undefined.
default decision := {
	"allow": false,
	"deny": ["the promotion gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Promotion gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty. On allow the checkpoint's release becomes the
#   request's target.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
