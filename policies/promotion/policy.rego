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

# Drift evaluation. A checkpoint trained from a parent is promoted only when,
# for every metric the target requires, a current evaluation shows it is not
# worse than its parent by more than the margin policy states, and the suite
# could see that margin. Current: made against the parent, under the design
# (alpha, power) and the metric's margin and planning spread in force now, on
# datasets still approved. Every current result counts: evaluating again on
# another suite cannot outvote a regression already measured.
eval_settings := object.get(settings, "evaluation", {})

# A training method may owe more evidence than the target asks: reinforcement
# fine-tuning (grpo) optimises a reward, which can rise while what it stands
# for falls (reward hacking), so a grpo candidate must also show, in the same
# current evaluation, the held-out objective metrics policy data names for the
# method (method_metrics), scored by a suite's scorer rather than the reward.
default run_method := null

run_method := run.method if {
	run := input.evidence.lineage.run
	is_object(run)
}

method_metrics := [metric |
	some metric in object.get(object.get(settings, "method_metrics", {}), run_method, [])
	not metric in target_settings.required_metrics
]

required_metrics := array.concat(target_settings.required_metrics, method_metrics) if {
	is_array(target_settings.required_metrics)
} else := target_settings.required_metrics

# Without the method, what the candidate owes cannot be known: fail closed.
deny contains msg if {
	input.action in {"request", "approve"}
	run := input.evidence.lineage.run
	is_object(run)
	not is_string(run.method)
	msg := sprintf(
		"%s: the registered recipe of %v no longer verifies, so the method it was trained with (and the evidence that method owes) cannot be read: restore the recipe file, or train again",
		[gate.describe(input.subject), run.run],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	some metric in method_metrics
	not measured(metric)
	msg := sprintf(
		"%s was trained by %v against a reward, which can rise while the objective it stands for falls: it needs a drift evaluation of the held-out objective %s (scored by a suite, not by the reward) beside the target's metrics",
		[gate.describe(input.subject), run_method, metric],
	)
}

# A root checkpoint (registered without a parent, approved at the base gate,
# produced by no run) has nothing to be compared with. Positive, so absent
# evidence needs an evaluation; a run's candidate is never a root, whatever
# row claims its parent.
root_checkpoint if {
	input.evidence.evaluation.parent_digest == null
	input.evidence.lineage.run == null
}

# A result counts only when a job the policy allowed made it (its job.start
# entry, signed by a member): one made outside a job, say by a script holding
# the platform key, neither passes nor blocks a candidate.
evaluation_results := [result |
	some result in object.get(object.get(input.evidence, "evaluation", {}), "results", [])
	object.get(result, "job", null) != null
]

measured(metric) if {
	some result in evaluation_results
	result.metrics[metric]
}

# Why a result does not count (empty: it is current): it is not comparable
# with what policy asks now, or its suite or data are not approved now.
stale(result, metric) := (((incomparable(result, metric) | suite_stale(result, metric)) | data_stale(result)) | judge_stale(result)) | noisy(result, metric)

incomparable(result, metric) := (((base_stale(result) | design_stale(result)) | margin_stale(result, metric)) | cluster_stale(result, metric)) | task_stale(result, metric)

base_stale(result) := {msg |
	object.get(result, "base_digest", "absent") != input.evidence.evaluation.parent_digest
	msg := sprintf("it compared with %v, not the parent %v", [object.get(result, "base_digest", "absent"), input.evidence.evaluation.parent_digest])
}

design_stale(result) := {msg |
	result.design != {"alpha": object.get(eval_settings, "alpha", null), "power": object.get(eval_settings, "power", null)}
	msg := sprintf(
		"it was decided at alpha %v, power %v where policy now states %v, %v",
		[result.design.alpha, result.design.power, object.get(eval_settings, "alpha", null), object.get(eval_settings, "power", null)],
	)
}

margin_stale(result, metric) := {msg |
	m := result.metrics[metric]
	declared := object.get(object.get(eval_settings, "metrics", {}), metric, {})
	policy_values := [object.get(declared, "margin", null), object.get(declared, "planning_spread", null)]
	[m.margin, m.planning_spread] != policy_values
	msg := sprintf("its margin %v and planning spread %v are not policy's %v and %v", array.concat([m.margin, m.planning_spread], policy_values))
}

# A metric policy plans with a cluster spread is decided only with its
# clusters: a suite cannot drop them to count fifty paraphrases as fifty items.
cluster_stale(result, metric) := {msg |
	m := result.metrics[metric]
	declared := object.get(object.get(eval_settings, "metrics", {}), metric, {})
	object.get(m, "cluster_spread", null) != object.get(declared, "cluster_spread", null)
	msg := sprintf("its cluster spread %v is not policy's %v", [object.get(m, "cluster_spread", null), object.get(declared, "cluster_spread", null)])
}

# The metric was measured by a suite approved at the suite gate.
suite_stale(result, metric) := {msg |
	m := result.metrics[metric]
	object.get(m, "suite_state", null) != "approved"
	msg := sprintf("its suite %v is %v, not approved at the suite gate", [object.get(m, "suite", null), object.get(m, "suite_state", null)])
}

# With the task kind and kind of score policy declares for the metric.
task_stale(result, metric) := {msg |
	m := result.metrics[metric]
	declared := object.get(object.get(eval_settings, "metrics", {}), metric, {})
	[object.get(m, "task", null), object.get(m, "kind", null)] != [object.get(declared, "task", null), object.get(declared, "kind", null)]
	msg := sprintf(
		"it measured the metric as a %v task with %v scores where policy declares %v and %v",
		[object.get(m, "task", null), object.get(m, "kind", null), object.get(declared, "task", null), object.get(declared, "kind", null)],
	)
}

data_stale(result) := {msg |
	some d in object.get(result, "datasets", [{"label": "(none listed)", "state": "absent"}])
	d.state != "approved"
	msg := sprintf("dataset %s is %s, no longer approved", [d.label, d.state])
}

# The base asked twice, in other batches, must agree with itself: decoding
# that is not deterministic on the hardware used cannot show a pass (the
# limits are policy data). A regression measured with noise still binds.
noisy(result, metric) := {msg |
	m := result.metrics[metric]
	floor := object.get(m, "noise_floor", null)
	not noise_within(m, floor, object.get(eval_settings, "noise", {}))
	msg := sprintf(
		"its base disagreed with itself between two passes (%v), beyond policy's limits %v: decoding was not deterministic where it ran; evaluate again where it is",
		[floor, object.get(eval_settings, "noise", {})],
	)
}

# Judged by the metric's own kind, over every item of the metric: a floor of
# the other shape, of fewer items, or with a field that is not a number does
# not show determinism.
noise_within(m, floor, limits) if {
	m.kind == "binary"
	is_number(floor.rate)
	is_number(floor.flips)
	floor.n == m.n
	floor.rate <= limits.max_flip_rate
}

noise_within(m, floor, limits) if {
	m.kind == "continuous"
	is_number(floor.max_abs_difference)
	floor.n == m.n
	floor.max_abs_difference <= limits.max_abs_difference
}

# A classifier that judged replies counts while it is approved, like the data:
# one withdrawn because it misjudged cannot vouch for the results it scored.
judge_stale(result) := {msg |
	not is_array(object.get(result, "judges", null))
	msg := "it lists no judges (not even none): it cannot show who classified its replies"
} | {msg |
	some j in result.judges
	object.get(j, "state", null) != "approved"
	msg := sprintf("its judge %v is %v, no longer approved", [object.get(j, "label", "(unnamed)"), object.get(j, "state", null)])
}

# A regression measured under the policy in force binds even when its suite or
# data were withdrawn since: withdrawing the suite that found a regression, and
# evaluating again on an easier one, must not erase it. Only a suite or data
# that was never approved makes a result not bind.
binding(result, metric) if {
	result.metrics[metric]
	count(incomparable(result, metric)) == 0
	object.get(result.metrics[metric], "suite_state", null) in {"approved", "withdrawn"}
	every d in object.get(result, "datasets", [{"state": "absent"}]) {
		d.state in {"approved", "withdrawn"}
	}
	is_array(object.get(result, "judges", null))
	every j in result.judges {
		object.get(j, "state", null) in {"approved", "withdrawn"}
	}
}

current(result, metric) if {
	result.metrics[metric]
	count(stale(result, metric)) == 0
}

deny contains msg if {
	input.action in {"request", "approve"}
	target_configured
	not is_array(target_settings.required_metrics)
	msg := sprintf(
		"promotion target %s lists no required_metrics in policy data: a policy owner must list the drift metrics it requires (an empty list requires none)",
		[target],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not root_checkpoint
	some metric in required_metrics
	not measured(metric)
	msg := sprintf(
		"%s has no drift evaluation of %s against its parent: run `forgegov eval run %s --suite SUITE --as NAME` with a suite that reports %s",
		[gate.describe(input.subject), metric, input.subject.name, metric],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not root_checkpoint
	some metric in required_metrics
	measured(metric)
	not has_current(metric)
	some result in evaluation_results
	result.metrics[metric]
	msg := sprintf(
		"%s: evaluation %s of %s is not current (%s): evaluate it again under the policy in force",
		[gate.describe(input.subject), result.id, metric, concat("; ", sort(stale(result, metric)))],
	)
}

has_current(metric) if {
	some result in evaluation_results
	current(result, metric)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not root_checkpoint
	some metric in required_metrics
	some result in evaluation_results
	binding(result, metric)
	m := result.metrics[metric]
	m.verdict == "inferior"
	msg := sprintf(
		"%s regressed on %s: %v against %v for its parent (difference %v, interval [%v, %v]), beyond the margin of %v policy allows (evaluation %s): it cannot be promoted; change the recipe and train again",
		[
			gate.describe(input.subject), metric, rounded(m.candidate_mean), rounded(m.base_mean),
			rounded(m.difference), rounded(m.interval[0]), rounded(m.interval[1]), m.margin, result.id,
		],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not root_checkpoint
	some metric in required_metrics
	some result in evaluation_results
	current(result, metric)
	m := result.metrics[metric]
	m.verdict == "insufficient-evidence"
	msg := sprintf(
		"%s: evaluation %s cannot see the margin of %v on %s (insufficient evidence): %v items give power %v below the %v policy requires; evaluate with a suite of at least %v items for %s",
		[gate.describe(input.subject), result.id, m.margin, metric, m.n, rounded(m.power), eval_settings.power, m.required, metric],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	not root_checkpoint
	some metric in required_metrics
	some result in evaluation_results
	current(result, metric)
	not result.metrics[metric].verdict in {"non-inferior", "inferior", "insufficient-evidence"}
	msg := sprintf("%s: evaluation %s reports no verdict on %s: evaluate it again", [gate.describe(input.subject), result.id, metric])
}

# Holm's correction holds across the metrics of one evaluation: the required
# metrics are decided together, so one current evaluation must cover them all.
decided_together if {
	some result in evaluation_results
	every metric in required_metrics {
		current(result, metric)
	}
}

deny contains msg if {
	input.action in {"request", "approve"}
	not root_checkpoint
	is_array(required_metrics)
	count(required_metrics) > 0
	every metric in required_metrics {
		has_current(metric)
	}
	not decided_together
	msg := sprintf(
		"%s: no single current evaluation covers %s: they are decided together (Holm across the metrics of one evaluation); run them in one `forgegov eval run` with every suite",
		[gate.describe(input.subject), concat(", ", required_metrics)],
	)
}

# A run's candidate is compared with the base the run trained from: a parent
# recorded otherwise is not the model the run started from.
deny contains msg if {
	input.action in {"request", "approve"}
	run := input.evidence.lineage.run
	is_object(run)
	run.status == "completed"
	object.get(run, "base_digest", "absent") != input.evidence.evaluation.parent_digest
	msg := sprintf(
		"%s was trained by run %s from %s, but is registered with parent %v: its evaluation would compare it with another model; register the run's candidate as the run left it",
		[gate.describe(input.subject), run.id, object.get(run, "base_digest", "absent"), input.evidence.evaluation.parent_digest],
	)
}

rounded(x) := round(x * 10000) / 10000

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
