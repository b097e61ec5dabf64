package forgegov.gates.suite_test

import data.forgegov.gates.suite
import data.forgegov.lib.fixtures_test as fx

task(metric, kind, state) := {
	"metric": metric, "task": kind, "scorer": "refusal", "options": {}, "input": "prompt", "target": null,
	"where": {}, "cluster": null, "judge": null,
	"dataset": {"label": "dataset/safety-eval@1", "digest": "sha256:d1", "state": state, "dataset_kind": "eval"},
}

honest := {"evidence": {"suite": {"tasks": [
	task("harmful_refusal", "safety", "approved"),
	task("benign_compliance", "over-refusal", "approved"),
]}}}

doc(action, actor, approvals, changes) := fx.doc("suite", "drift", action, actor, approvals, object.union(honest, changes))

test_request_by_engineer_is_pending if {
	d := suite.decision with input as doc("request", "alice", [], {"subject": {"state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role ml-lead (have 0 of 1)"}}
}

test_approve_by_ml_lead_allows if {
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := suite.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
	some msg in d.deny
	contains(msg, "carol does not hold role ml-lead")
}

test_requester_cannot_approve_own_suite if {
	d := suite.decision with input as doc("approve", "alice", [fx.new("alice", "approve")], {})
	not d.allow
}

test_unapproved_data_denied if {
	changes := {"evidence": {"suite": {"tasks": [task("harmful_refusal", "safety", "pending")]}}}
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], changes)
	d.deny == {"suite drift v1 reads dataset/safety-eval@1 for harmful_refusal, which is pending: a suite reads approved data only; approve it at the dataset gate first"}
}

test_metric_measured_with_another_task_kind_denied if {
	# The attack: over-refusal scored by a matcher no model satisfies, so nothing ever flips.
	changes := {"evidence": {"suite": {"tasks": [task("benign_compliance", "custom", "approved")]}}}
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], changes)
	d.deny == {"suite drift v1 measures benign_compliance with a custom task, but policy measures it with a over-refusal task: use that task kind for this metric"}
}

test_undeclared_metric_denied if {
	changes := {"evidence": {"suite": {"tasks": [task("vibes", "custom", "approved")]}}}
	d := suite.decision with input as doc("request", "alice", [], changes)
	some msg in d.deny
	contains(msg, "reports metric vibes, for which policy declares no margin")
}

test_empty_suite_denied if {
	d := suite.decision with input as doc("request", "alice", [], {"evidence": {"suite": {"tasks": []}}})
	some msg in d.deny
	contains(msg, "measures nothing")
}

test_absent_evidence_denied if {
	d := suite.decision with input as object.remove(doc("request", "alice", [], {}), ["evidence"])
	not d.allow
}

test_training_data_as_held_out_items_denied if {
	on_training := object.union(task("harmful_refusal", "safety", "approved"), {"dataset": {"dataset_kind": "sft-chat"}})
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"evidence": {"suite": {"tasks": [on_training]}}})
	d.deny == {"suite drift v1 reads sft-chat data for harmful_refusal, which a safety task may not: use held-out evaluation data"}
}

test_retention_may_read_held_out_pretraining_text if {
	retention := object.union(task("general_retention", "general-retention", "approved"), {"dataset": {"dataset_kind": "pretraining-text"}})
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"evidence": {"suite": {"tasks": [retention]}}})
	d.allow
}

test_clustered_metric_without_a_cluster_column_denied if {
	unclustered := task("domain_accuracy", "domain", "approved")
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"evidence": {"suite": {"tasks": [unclustered]}}})
	d.deny == {"suite drift v1 measures domain_accuracy without a cluster column, but policy plans it with clusters (items that share a passage): name the column with cluster"}
	clustered := object.union(unclustered, {"cluster": "part"})
	suite.decision.allow with input as doc("approve", "dave", [fx.new("dave", "approve")], {"evidence": {"suite": {"tasks": [clustered]}}})
}

test_unapproved_judge_denied if {
	judged := object.union(task("harmful_refusal", "safety", "approved"), {"judge": {"label": "checkpoint/refusal-judge@1", "digest": "sha256:j1", "state": "registered", "stage": "post-training"}})
	d := suite.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"evidence": {"suite": {"tasks": [judged]}}})
	d.deny == {"suite drift v1 has checkpoint/refusal-judge@1 judge the replies for harmful_refusal, but that is not a checkpoint approved at the base gate (registered): approve the classifier first, or drop judge to score by the rules"}
	approved := object.union(judged, {"judge": {"state": "approved"}})
	suite.decision.allow with input as doc("approve", "dave", [fx.new("dave", "approve")], {"evidence": {"suite": {"tasks": [approved]}}})
}

test_judge_without_state_or_malformed_denied if {
	every judge in [{"label": "checkpoint/refusal-judge@1"}, "sha256:abc", ["x"], 1, {"state": true}] {
		judged := json.patch(task("harmful_refusal", "safety", "approved"), [{"op": "replace", "path": "/judge", "value": judge}])
		d := suite.decision with input as json.patch(doc("approve", "dave", [fx.new("dave", "approve")], {}), [{"op": "replace", "path": "/evidence/suite/tasks", "value": [judged]}])
		not d.allow
	}
}

test_a_task_without_the_judge_field_denied if {
	bare := object.remove(task("harmful_refusal", "safety", "approved"), ["judge"])
	d := suite.decision with input as json.patch(doc("approve", "dave", [fx.new("dave", "approve")], {}), [{"op": "replace", "path": "/evidence/suite/tasks", "value": [bare]}])
	not d.allow
}
