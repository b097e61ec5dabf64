# METADATA
# title: forgegov suite gate
# description: >-
#   Decides request, approve, reject and withdraw actions on an evaluation
#   suite: an ML lead signs off the items and scoring a drift evaluation will
#   decide promotions on. A suite reads approved data only, and measures each
#   metric with the task kind policy data declares for it, so that a suite
#   cannot, say, score over-refusal with a matcher no model ever satisfies.
#   Roles, requester roles, quorum and rejecters come from data.json.
package forgegov.gates.suite

import data.forgegov.lib.config
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

settings := standard_gate.settings_of("suite")

declared_metrics := object.get(object.get(object.get(config.gates, "promotion", {}), "evaluation", {}), "metrics", {})

suite_tasks := object.get(object.get(object.get(input, "evidence", {}), "suite", {}), "tasks", [])

deny contains msg if some msg in standard_gate.deny(gate.document, "suite", settings)

deny contains msg if {
	input.action in {"request", "approve"}
	count(suite_tasks) == 0
	msg := sprintf("%s measures nothing forgegov could find: register a suite with at least one task", [gate.describe(input.subject)])
}

deny contains msg if {
	input.action in {"request", "approve"}
	some task in suite_tasks
	task.dataset.state != "approved"
	msg := sprintf(
		"%s reads %s for %s, which is %s: a suite reads approved data only; approve it at the dataset gate first",
		[gate.describe(input.subject), task.dataset.label, task.metric, task.dataset.state],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	some task in suite_tasks
	not declared_metrics[task.metric]
	msg := sprintf(
		"%s reports metric %s, for which policy declares no margin: name a metric policy data declares (%s), or add it by a policy change",
		[gate.describe(input.subject), task.metric, concat(", ", sort(object.keys(declared_metrics)))],
	)
}

deny contains msg if {
	input.action in {"request", "approve"}
	some task in suite_tasks
	declared := declared_metrics[task.metric]
	task.task != object.get(declared, "task", null)
	msg := sprintf(
		"%s measures %s with a %s task, but policy measures it with a %v task: use that task kind for this metric",
		[gate.describe(input.subject), task.metric, task.task, object.get(declared, "task", null)],
	)
}

# A judge decides what every reply in its task scored: it is a checkpoint an
# ML lead approved, like the data, and it cannot be swapped once the suite is
# approved (the suite pins its digest). Anything but null or an approved
# judge's facts denies: a malformed or absent field must not read as "no judge".
deny contains msg if {
	input.action in {"request", "approve"}
	some task in suite_tasks
	not judge_ok(task)
	judge := object.get(task, "judge", "(absent)")
	msg := sprintf(
		"%s has %v judge the replies for %s, but that is not a checkpoint approved at the base gate (%v): approve the classifier first, or drop judge to score by the rules",
		[gate.describe(input.subject), judge_label(judge), task.metric, judge_state(judge)],
	)
}

judge_ok(task) if task.judge == null

judge_ok(task) if {
	is_object(task.judge)
	task.judge.state == "approved"
}

judge_label(judge) := judge.label if {
	is_object(judge)
	is_string(judge.label)
} else := judge

judge_state(judge) := object.get(judge, "state", "no state") if is_object(judge)

else := "malformed"

# Held-out items only: a suite over training data would measure memory, not
# behaviour (the kinds each task may read are policy data).
deny contains msg if {
	input.action in {"request", "approve"}
	some task in suite_tasks
	not object.get(task, "dataset", {}).dataset_kind in object.get(object.get(settings, "task_dataset_kinds", {}), task.task, [])
	msg := sprintf(
		"%s reads %v data for %s, which a %s task may not: use held-out evaluation data",
		[gate.describe(input.subject), object.get(object.get(task, "dataset", {}), "dataset_kind", null), task.metric, task.task],
	)
}

# A metric policy plans with a cluster spread must be measured with clusters.
deny contains msg if {
	input.action in {"request", "approve"}
	some task in suite_tasks
	object.get(object.get(declared_metrics, task.metric, {}), "cluster_spread", null) != null
	object.get(task, "cluster", null) == null
	msg := sprintf(
		"%s measures %s without a cluster column, but policy plans it with clusters (items that share a passage): name the column with cluster",
		[gate.describe(input.subject), task.metric],
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
	"deny": ["the suite gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Suite gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
