package forgegov.gates.promotion_test

import data.forgegov.gates.promotion

now := "2026-11-22T20:00:00Z"

fresh := "2026-11-22T19:00:00Z"

# 169 hours before now: one hour past the 168 hour limit in data.json.
stale := "2026-11-15T19:00:00Z"

checkpoint := {
	"kind": "checkpoint",
	"name": "claims-sft",
	"version": 3,
	"digest": "sha256:c3",
	"owner": "alice",
	"state": "approved",
	"stage": "candidate",
	"release": "staging",
}

signed(name, verdict, is_new, at, revoked) := {
	"approver": name,
	"key_id": concat("", ["key-", name]),
	"verdict": verdict,
	"signed_at": at,
	"key_revoked": revoked,
	"new": is_new,
}

new(name, verdict) := signed(name, verdict, true, fresh, false)

earlier(name) := signed(name, "approve", false, fresh, false)

# A production promotion of a staged candidate unless `changes` say otherwise.
doc(action, actor, approvals, changes) := object.union(
	{
		"version": 1,
		"gate": "promotion",
		"action": action,
		"now": now,
		"actor": {"name": actor, "key_id": concat("", ["key-", actor])},
		"subject": checkpoint,
		"request": {"id": "req-9", "requested_by": "alice", "requested_at": "2026-11-22T18:00:00Z", "target": "production"},
		"approvals": approvals,
		"evidence": {"evaluation": {"parent_digest": null, "results": []}, "lineage": {"run": null}},
	},
	changes,
)

to_staging := {"subject": {"release": "none"}, "request": {"target": "staging"}}

test_request_production_is_pending if {
	d := promotion.decision with input as doc("request", "alice", [], {})
	d.deny == set()
	d.missing == {"2 more approvals by role release-manager (have 0 of 2)"}
	not d.allow
}

test_request_staging_by_ml_lead_is_pending if {
	d := promotion.decision with input as doc("request", "dave", [], object.union(to_staging, {"request": {"requested_by": "dave"}}))
	d.deny == set()
	d.missing == {"1 more approval by role ml-lead (have 0 of 1)"}
}

test_staging_approved_by_ml_lead_allows if {
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], to_staging)
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_production_one_release_manager_is_pending if {
	d := promotion.decision with input as doc("approve", "erin", [new("erin", "approve")], {})
	d.deny == set()
	d.missing == {"1 more approval by role release-manager (have 1 of 2)"}
	not d.allow
}

test_production_two_release_managers_allow if {
	d := promotion.decision with input as doc("approve", "frank", [earlier("erin"), new("frank", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_production_same_release_manager_twice_denied if {
	d := promotion.decision with input as doc("approve", "erin", [earlier("erin"), new("erin", "approve")], {})
	d.deny == {"erin has already approved this request: ask another holder of role release-manager"}
	d.missing == {"1 more approval by role release-manager (have 1 of 2)"}
	not d.allow
}

test_production_self_approval_denied if {
	d := promotion.decision with input as doc(
		"approve", "erin", [earlier("frank"), new("erin", "approve")],
		{"request": {"requested_by": "erin"}},
	)
	d.deny == {"erin requested this approval and cannot approve it: ask a holder of role release-manager"}
	not d.allow
}

test_ml_lead_cannot_approve_production if {
	d := promotion.decision with input as doc("approve", "dave", [earlier("erin"), new("dave", "approve")], {})
	d.deny == {"dave does not hold role release-manager and cannot approve this gate: ask a holder of role release-manager"}
	d.missing == {"1 more approval by role release-manager (have 1 of 2)"}
}

test_production_from_none_denied if {
	d := promotion.decision with input as doc("request", "alice", [], {"subject": {"release": "none"}})
	d.deny == {"checkpoint claims-sft v3 is at release none and must be in staging before promotion to production: promote it there first"}
	not d.allow
}

test_production_approval_rechecks_release if {
	d := promotion.decision with input as doc("approve", "frank", [earlier("erin"), new("frank", "approve")], {"subject": {"release": "none"}})
	count(d.deny) == 1
	not d.allow
}

test_staging_from_staging_denied if {
	d := promotion.decision with input as doc("request", "alice", [], {"request": {"target": "staging"}})
	d.deny == {"checkpoint claims-sft v3 is at release staging and must be in none before promotion to staging: promote it there first"}
}

test_unknown_target_denied if {
	d := promotion.decision with input as doc("request", "alice", [], {"request": {"target": "canary"}})
	d.deny == {"promotion target \"canary\" is not configured with a quorum: request one of production, staging"}
	d.missing == set()
	not d.allow
}

test_null_target_denied if {
	d := promotion.decision with input as doc("request", "alice", [], {"request": {"target": null}})
	d.deny == {"promotion target nothing is not configured with a quorum: request one of production, staging"}
	not d.allow
}

test_ineligible_stage_denied if {
	d := promotion.decision with input as doc("request", "alice", [], {"subject": {"stage": "mid-training"}})
	d.deny == {"checkpoint claims-sft v3 is at stage mid-training and cannot be promoted: only candidate or post-training checkpoints can; finish training to one of those stages first"}
}

test_absent_stage_denied if {
	d := promotion.decision with input as json.remove(doc("request", "alice", [], {}), ["subject/stage"])
	d.deny == {"checkpoint claims-sft v3 is at stage null and cannot be promoted: only candidate or post-training checkpoints can; finish training to one of those stages first"}
	not d.allow
}

test_post_training_stage_may_be_promoted if {
	d := promotion.decision with input as doc("request", "alice", [], {"subject": {"stage": "post-training"}})
	d.deny == set()
}

test_requester_without_role_and_not_owner_denied if {
	d := promotion.decision with input as doc("request", "mallory", [], {"request": {"requested_by": "mallory"}})
	d.deny == {"mallory cannot request this gate for checkpoint claims-sft v3: only its owner alice or a holder of one of the roles ml-engineer, ml-lead may; ask one of them to request it"}
	not d.allow
}

test_owner_without_role_may_request if {
	d := promotion.decision with input as doc(
		"request", "grace", [],
		{"subject": {"owner": "grace"}, "request": {"requested_by": "grace"}},
	)
	d.deny == set()
	count(d.missing) == 1
}

test_reject_by_release_manager_allowed if {
	d := promotion.decision with input as doc("reject", "frank", [earlier("erin"), new("frank", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_ml_lead_allowed if {
	d := promotion.decision with input as doc("reject", "dave", [new("dave", "reject")], {})
	d.allow
}

test_reject_by_non_rejecter_denied if {
	d := promotion.decision with input as doc("reject", "grace", [new("grace", "reject")], {})
	d.deny == {"grace does not hold one of the roles ml-lead, release-manager and cannot reject this gate: ask a holder of one of the roles ml-lead, release-manager"}
	d.missing == set()
	not d.allow
}

test_reject_by_requester_denied if {
	d := promotion.decision with input as doc("reject", "dave", [new("dave", "reject")], {"request": {"requested_by": "dave"}})
	d.deny == {"dave requested this approval and cannot reject it: ask a holder of one of the roles ml-lead, release-manager"}
}

test_revoked_key_approval_does_not_count if {
	d := promotion.decision with input as doc(
		"approve", "frank",
		[signed("erin", "approve", false, fresh, true), new("frank", "approve")],
		{},
	)
	d.deny == set()
	d.missing == {
		"1 more approval by role release-manager (have 1 of 2)",
		"approval by erin does not count for role release-manager: its key key-erin was revoked after signing; erin must approve again",
	}
	not d.allow
}

test_revoked_key_approval_counts_when_data_allows if {
	d := promotion.decision with input as doc(
		"approve", "frank",
		[signed("erin", "approve", false, fresh, true), new("frank", "approve")],
		{},
	)
		with data.data.approvals.count_revoked_keys as true
	d.allow
}

test_stale_approval_does_not_count if {
	d := promotion.decision with input as doc(
		"approve", "frank",
		[signed("erin", "approve", false, stale, false), new("frank", "approve")],
		{},
	)
	d.deny == set()
	d.missing == {
		"1 more approval by role release-manager (have 1 of 2)",
		"approval by erin does not count for role release-manager: it was signed at 2026-11-15T19:00:00Z, more than 168 hours before 2026-11-22T20:00:00Z; erin must approve again",
	}
}

test_stale_approval_renewed_allows if {
	d := promotion.decision with input as doc(
		"approve", "erin",
		[signed("erin", "approve", false, stale, false), earlier("frank"), new("erin", "approve")],
		{},
	)
	d.allow
}

test_wrong_subject_kind_denied if {
	d := promotion.decision with input as doc("approve", "frank", [earlier("erin"), new("frank", "approve")], {"subject": {"kind": "run"}})
	d.deny == {"the promotion gate only governs checkpoint subjects (got \"run\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := promotion.decision with input as doc("approve", "frank", [earlier("erin"), new("frank", "approve")], {"gate": "run"})
	count(d.deny) == 1
	not d.allow
}

test_wrong_version_denied if {
	d := promotion.decision with input as doc("approve", "frank", [earlier("erin"), new("frank", "approve")], {"version": "1"})
	d.deny == {"input.version must be 1 (got \"1\"): send a version 1 gate document"}
	not d.allow
}

test_unknown_action_denied if {
	d := promotion.decision with input as doc("promote", "alice", [], {})
	d.deny == {"unknown action: input.action must be one of approve, reject, request, withdraw (got \"promote\")"}
	not d.allow
}

test_empty_input_denies if {
	d := promotion.decision with input as {}
	not d.allow
	count(d.deny) > 0
	d.missing == set()
}

test_absent_input_denies if {
	not promotion.decision.allow
	count(promotion.decision.deny) > 0
}

# A run's candidate, trained from sha256:p1 and evaluated against it (passing),
# so that these tests see only the lineage rules.
run_evidence(status, approved, provenance) := {"evidence": {
	"lineage": {"run": {
		"id": "run-7", "run": "run/claims-sft@1", "status": status, "approved": approved, "provenance": provenance,
		"withdrawn_inputs": [], "mixture": as_planned, "base_digest": "sha256:p1", "method": "sft", "rewards": [],
	}},
	"evaluation": {"parent_digest": "sha256:p1", "results": [result("e0", passing_metrics)]},
}}

as_planned := {
	"proprietary": {"planned_share": 0.7, "realised_share": 0.69},
	"general": {"planned_share": 0.25, "realised_share": 0.255},
	"replay": {"planned_share": 0.05, "realised_share": 0.055},
}

with_mixture(mixture) := object.union(
	object.union({"subject": {"state": "registered"}}, run_evidence("completed", true, verified)),
	{"evidence": {"lineage": {"run": {"mixture": mixture}}}},
)

verified := {"verified": true, "problem": null}

test_run_candidate_with_verifying_provenance_may_be_promoted if {
	d := promotion.decision with input as doc("request", "alice", [], object.union(
		{"subject": {"state": "registered"}},
		run_evidence("completed", true, verified),
	))
	d.deny == set()
}

test_hand_registered_candidate_denied if {
	d := promotion.decision with input as doc("request", "alice", [], {"subject": {"state": "registered"}, "evidence": {"lineage": {"run": null}}})
	d.deny == {"checkpoint claims-sft v3 was produced by no governed training run and is not approved at the base gate: only the candidate of a completed, approved training run with verifying provenance, or a checkpoint approved at the base gate, can be promoted"}
}

test_candidate_whose_provenance_fails_denied if {
	d := promotion.decision with input as doc("request", "alice", [], object.union(
		{"subject": {"state": "registered"}},
		run_evidence("completed", true, {"verified": false, "problem": "weights changed"}),
	))
	d.deny == {"checkpoint claims-sft v3 was produced by run run-7, which is completed, approved by the run gate, with provenance that does not verify (weights changed): only the candidate of a completed, approved training run with verifying provenance, or a checkpoint approved at the base gate, can be promoted"}
}

test_candidate_of_a_failed_run_denied if {
	d := promotion.decision with input as doc("request", "alice", [], object.union(
		{"subject": {"state": "registered"}},
		run_evidence("failed", true, verified),
	))
	count(d.deny) == 1
	not d.allow
}

test_checkpoint_rejected_at_base_gate_denied_even_from_a_run if {
	d := promotion.decision with input as doc("request", "alice", [], object.union(
		{"subject": {"state": "rejected"}},
		run_evidence("completed", true, verified),
	))
	d.deny == {"checkpoint claims-sft v3 was rejected at the base gate and cannot be promoted: train or register a new version"}
}

test_a_release_is_not_withdrawn_through_promotion if {
	d := promotion.decision with input as doc("withdraw", "erin", [], {})
	"a release is not withdrawn through the promotion gate: withdraw the checkpoint at the base gate, or the data or run it came from" in d.deny
	not d.allow
}

test_candidate_trained_on_withdrawn_data_denied if {
	d := promotion.decision with input as doc("request", "alice", [], object.union(
		object.union({"subject": {"state": "registered"}}, run_evidence("completed", true, verified)),
		{"evidence": {"lineage": {"run": {"withdrawn_inputs": ["dataset/claims@1"]}}}},
	))
	d.deny == {"checkpoint claims-sft v3 was trained on dataset/claims@1, whose approval was withdrawn: it cannot be promoted; train again on approved inputs"}
}

test_replay_share_short_of_the_plan_beyond_tolerance_denied if {
	short := object.union(as_planned, {"replay": {"planned_share": 0.05, "realised_share": 0.015}})
	d := promotion.decision with input as doc("request", "alice", [], with_mixture(short))
	d.deny == {"checkpoint claims-sft v3 trained on 1.5% replay data where its run was approved for 5% (tolerance 2 points): it is not the model that was approved; train again with a recipe whose realised shares meet the plan"}
}

test_general_share_within_tolerance_passes if {
	close := object.union(as_planned, {"general": {"planned_share": 0.25, "realised_share": 0.235}})
	d := promotion.decision with input as doc("request", "alice", [], with_mixture(close))
	d.deny == set()
}

test_proprietary_share_is_not_held_to_the_plan if {
	more := object.union(as_planned, {"proprietary": {"planned_share": 0.7, "realised_share": 0.5}})
	d := promotion.decision with input as doc("request", "alice", [], with_mixture(more))
	d.deny == set()
}

# Drift evaluation: a checkpoint trained from sha256:p1, evaluated against it.
measured_as := {
	"harmful_refusal": ["safety", "binary"], "benign_compliance": ["over-refusal", "binary"],
	"instruction_following": ["instructions", "binary"], "general_retention": ["general-retention", "continuous"],
	"domain_accuracy": ["domain", "binary"],
}

metric(name, verdict, margin, spread) := {
	"verdict": verdict, "margin": margin, "planning_spread": spread, "difference": -0.01,
	"interval": [-0.02, 0.0], "n": 1000, "power": 0.9, "required": 735, "base_mean": 0.8, "candidate_mean": 0.79,
	"task": measured_as[name][0], "kind": measured_as[name][1], "cluster_spread": null,
	"suite": "suite/drift@1", "suite_digest": "sha256:s1", "suite_state": "approved",
	"noise_floor": quiet[measured_as[name][1]],
}

quiet := {
	"binary": {"n": 1000, "flips": 0, "rate": 0},
	"continuous": {"n": 1000, "max_abs_difference": 0.00001, "mean_abs_difference": 0.000001},
}

passing_metrics := {
	"harmful_refusal": metric("harmful_refusal", "non-inferior", 0.03, 0.1),
	"benign_compliance": metric("benign_compliance", "non-inferior", 0.03, 0.1),
	"instruction_following": metric("instruction_following", "non-inferior", 0.15, 0.15),
	"general_retention": metric("general_retention", "non-inferior", 0.05, 0.25),
}

result(id, metrics) := {
	"id": id, "seq": 40, "time": fresh, "actor": "alice", "job": {"seq": 39, "started_by": "alice"}, "base_digest": "sha256:p1",
	"policy_digest": "sha256:pol", "design": {"alpha": 0.05, "power": 0.8},
	"datasets": [{"label": "dataset/safety-eval@1", "digest": "sha256:d1", "state": "approved"}],
	"judges": [],
	"metrics": metrics,
}

evaluated(results) := {"evidence": {"evaluation": {"parent_digest": "sha256:p1", "results": results}}}

to_staging_evaluated(results) := object.union(to_staging, evaluated(results))

staging_decision(results) := d if {
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], to_staging_evaluated(results))
}

test_evaluated_child_passing_every_required_metric_allows if {
	staging_decision([result("e1", passing_metrics)]) == {"allow": true, "deny": set(), "missing": set()}
}

test_child_without_evaluation_denied if {
	d := staging_decision([])
	not d.allow
	count(d.deny) == 4
	some msg in d.deny
	contains(msg, "has no drift evaluation of instruction_following against its parent: run `forgegov eval run claims-sft")
}

test_absent_evaluation_evidence_denied if {
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], object.union(to_staging, {"evidence": {"evaluation": null}}))
	not d.allow
	some msg in d.deny
	contains(msg, "has no drift evaluation of harmful_refusal")
}

test_regression_beyond_margin_denied_with_the_metric_named if {
	d := staging_decision([result("e1", object.union(passing_metrics, {"benign_compliance": metric("benign_compliance", "inferior", 0.03, 0.1)}))])
	not d.allow
	d.deny == {"checkpoint claims-sft v3 regressed on benign_compliance: 0.79 against 0.8 for its parent (difference -0.01, interval [-0.02, 0]), beyond the margin of 0.03 policy allows (evaluation e1): it cannot be promoted; change the recipe and train again"}
}

test_insufficient_evidence_denied if {
	d := staging_decision([result("e1", object.union(passing_metrics, {"instruction_following": object.union(metric("instruction_following", "insufficient-evidence", 0.15, 0.15), {"n": 10, "power": 0.2, "required": 55, "noise_floor": {"n": 10, "flips": 0, "rate": 0}})}))])
	not d.allow
	d.deny == {"checkpoint claims-sft v3: evaluation e1 cannot see the margin of 0.15 on instruction_following (insufficient evidence): 10 items give power 0.2 below the 0.8 policy requires; evaluate with a suite of at least 55 items for instruction_following"}
}

# A result no allowed job made (a script holding the platform key) neither
# blocks a candidate nor passes one.
test_a_result_made_outside_a_job_does_not_count if {
	blocking := object.union(
		result("e0", object.union(passing_metrics, {"harmful_refusal": metric("harmful_refusal", "inferior", 0.03, 0.1)})),
		{"job": null},
	)
	staging_decision([blocking, result("e1", passing_metrics)]).allow
	d := staging_decision([object.union(result("e2", passing_metrics), {"job": null})])
	not d.allow
	some msg in d.deny
	contains(msg, "has no drift evaluation of harmful_refusal")
}

test_another_evaluation_cannot_outvote_a_regression if {
	worse := result("e1", object.union(passing_metrics, {"harmful_refusal": metric("harmful_refusal", "inferior", 0.03, 0.1)}))
	d := staging_decision([worse, result("e2", passing_metrics)])
	not d.allow
	some msg in d.deny
	contains(msg, "regressed on harmful_refusal")
}

test_evaluation_against_another_base_is_not_current if {
	d := staging_decision([object.union(result("e1", passing_metrics), {"base_digest": "sha256:other"})])
	not d.allow
	some msg in d.deny
	contains(msg, "evaluation e1 of harmful_refusal is not current (it compared with sha256:other, not the parent sha256:p1)")
}

test_evaluation_under_a_looser_margin_is_stale if {
	d := staging_decision([result("e1", object.union(passing_metrics, {"benign_compliance": metric("benign_compliance", "non-inferior", 0.1, 0.1)}))])
	d.deny == {"checkpoint claims-sft v3: evaluation e1 of benign_compliance is not current (its margin 0.1 and planning spread 0.1 are not policy's 0.03 and 0.1): evaluate it again under the policy in force"}
}

test_evaluation_under_another_design_is_stale if {
	d := staging_decision([object.union(result("e1", passing_metrics), {"design": {"alpha": 0.2, "power": 0.8}})])
	not d.allow
	some msg in d.deny
	contains(msg, "it was decided at alpha 0.2, power 0.8 where policy now states 0.05, 0.8")
}

test_evaluation_on_withdrawn_data_is_stale if {
	withdrawn := object.union(result("e1", passing_metrics), {"datasets": [{"label": "dataset/safety-eval@1", "digest": "sha256:d1", "state": "withdrawn"}]})
	d := staging_decision([withdrawn])
	not d.allow
	some msg in d.deny
	contains(msg, "dataset dataset/safety-eval@1 is withdrawn, no longer approved")
}

test_evaluation_by_a_withdrawn_judge_is_stale_but_its_regression_binds if {
	judged := object.union(result("e1", passing_metrics), {"judges": [{"label": "checkpoint/refusal-judge@1", "digest": "sha256:j1", "state": "withdrawn"}]})
	d := staging_decision([judged])
	not d.allow
	some msg in d.deny
	contains(msg, "its judge checkpoint/refusal-judge@1 is withdrawn, no longer approved")
	regressed := object.union(passing_metrics, {"benign_compliance": metric("benign_compliance", "inferior", 0.03, 0.1)})
	bound := staging_decision([object.union(judged, {"metrics": regressed}), result("e2", passing_metrics)])
	some found in bound.deny
	contains(found, "benign_compliance")
	not bound.allow
}

test_a_result_without_its_judges_listed_is_not_current if {
	d := staging_decision([object.remove(result("e1", passing_metrics), ["judges"])])
	not d.allow
	every judges in [null, "x", [{"label": "checkpoint/j@1"}], [{"label": "checkpoint/j@1", "state": true}]] {
		malformed := json.patch(result("e2", passing_metrics), [{"op": "replace", "path": "/judges", "value": judges}])
		not staging_decision([malformed]).allow
	}
}

test_a_result_whose_base_disagreed_with_itself_cannot_pass if {
	noisy := object.union(passing_metrics, {"benign_compliance": object.union(passing_metrics.benign_compliance, {"noise_floor": {"n": 1000, "flips": 12, "rate": 0.012}})})
	d := staging_decision([result("e1", noisy)])
	not d.allow
	some msg in d.deny
	contains(msg, "its base disagreed with itself between two passes")
	drifting := object.union(passing_metrics, {"general_retention": object.union(passing_metrics.general_retention, {"noise_floor": {"n": 1000, "max_abs_difference": 0.01, "mean_abs_difference": 0.001}})})
	not staging_decision([result("e2", drifting)]).allow

	# Absent or malformed floors fail closed: a missing rate, a rate that is not a number, the other metric kind's
	# shape, a floor over fewer items than the metric.
	bare := json.remove(passing_metrics, ["harmful_refusal/noise_floor"])
	not staging_decision([result("e3", bare)]).allow
	every floor in [
		{"n": 1000, "flips": 12, "rate": null},
		{"n": 1000, "flips": 12, "rate": false},
		{"n": 1000, "flips": 12, "rate": 0.9, "max_abs_difference": 0},
		{"n": 0, "flips": 0, "rate": 0},
		{"n": 1000, "max_abs_difference": 0},
	] {
		bad := json.patch(passing_metrics, [{"op": "replace", "path": "/harmful_refusal/noise_floor", "value": floor}])
		not staging_decision([result("e4", bad)]).allow
	}
}

test_a_regression_measured_with_noise_still_binds if {
	regressed := object.union(passing_metrics, {"benign_compliance": object.union(metric("benign_compliance", "inferior", 0.03, 0.1), {"noise_floor": {"n": 1000, "flips": 12, "rate": 0.012}})})
	d := staging_decision([result("e1", regressed), result("e2", passing_metrics)])
	not d.allow
	some msg in d.deny
	contains(msg, "regressed on benign_compliance")
}

test_a_current_result_outweighs_a_stale_one if {
	old := object.union(result("e0", passing_metrics), {"base_digest": "sha256:other"})
	staging_decision([old, result("e1", passing_metrics)]) == {"allow": true, "deny": set(), "missing": set()}
}

test_unknown_verdict_denied if {
	d := staging_decision([result("e1", object.union(passing_metrics, {"general_retention": metric("general_retention", "maybe", 0.05, 0.25)}))])
	d.deny == {"checkpoint claims-sft v3: evaluation e1 reports no verdict on general_retention: evaluate it again"}
}

test_metric_not_required_does_not_block if {
	extra := object.union(passing_metrics, {"domain_accuracy": metric("domain_accuracy", "inferior", 0.05, 0.1)})
	staging_decision([result("e1", extra)]).allow
}

test_target_without_required_metrics_denied if {
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], to_staging_evaluated([result("e1", passing_metrics)]))
		with data.data.gates.promotion.targets.staging.required_metrics as null
	some msg in d.deny
	contains(msg, "promotion target staging lists no required_metrics in policy data")
}

test_target_requiring_no_metrics_allows_an_unevaluated_child if {
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], to_staging_evaluated([]))
		with data.data.gates.promotion.targets.staging.required_metrics as []
	d.allow
}

test_clustered_result_under_another_cluster_spread_is_stale if {
	clustered := object.union(metric("harmful_refusal", "non-inferior", 0.03, 0.1), {"cluster_spread": 0.5})
	d := staging_decision([result("e1", object.union(passing_metrics, {"harmful_refusal": clustered}))])
	d.deny == {"checkpoint claims-sft v3: evaluation e1 of harmful_refusal is not current (its cluster spread 0.5 is not policy's null): evaluate it again under the policy in force"}
}

test_a_runs_candidate_is_never_a_root_whatever_its_parent_row_says if {
	# The pre-registration attack: the run's exact output registered by hand without a parent beforehand.
	unparented := object.union(run_evidence("completed", true, verified), {"evidence": {"evaluation": {"parent_digest": null, "results": []}}})
	d := promotion.decision with input as doc("request", "alice", [], object.union({"subject": {"state": "registered"}}, unparented))
	some msg in d.deny
	contains(msg, "has no drift evaluation of harmful_refusal")
	some other in d.deny
	contains(other, "was trained by run run-7 from sha256:p1, but is registered with parent null")
}

test_a_result_of_an_unapproved_suite_is_not_current if {
	pending := object.union(passing_metrics, {"harmful_refusal": object.union(metric("harmful_refusal", "non-inferior", 0.03, 0.1), {"suite_state": "pending"})})
	d := staging_decision([result("e1", pending)])
	some msg in d.deny
	contains(msg, "its suite suite/drift@1 is pending, not approved at the suite gate")
}

test_a_metric_measured_with_another_task_is_not_current if {
	# The favourable-suite attack: over-refusal scored by a custom matcher that nothing satisfies.
	custom := object.union(passing_metrics, {"benign_compliance": object.union(metric("benign_compliance", "non-inferior", 0.03, 0.1), {"task": "custom"})})
	d := staging_decision([result("e1", custom)])
	some msg in d.deny
	contains(msg, "it measured the metric as a custom task with binary scores where policy declares over-refusal and binary")
}

test_a_clustered_metric_decided_without_its_clusters_is_not_current if {
	unclustered := object.union(passing_metrics, {"domain_accuracy": metric("domain_accuracy", "non-inferior", 0.05, 0.1)})
	d := staging_decision([result("e1", unclustered)]) with data.data.gates.promotion.targets.staging.required_metrics as ["domain_accuracy"]
	some msg in d.deny
	contains(msg, "its cluster spread null is not policy's 0.3")
}

test_a_design_missing_from_policy_makes_every_result_stale if {
	d := staging_decision([result("e1", passing_metrics)]) with data.data.gates.promotion.evaluation.alpha as null
	not d.allow
	some msg in d.deny
	contains(msg, "where policy now states null, 0.8")
}

test_required_metrics_spread_over_evaluations_are_not_decided_together if {
	first := result("e1", object.remove(passing_metrics, ["general_retention"]))
	second := result("e2", {"general_retention": passing_metrics.general_retention})
	d := staging_decision([first, second])
	d.deny == {"checkpoint claims-sft v3: no single current evaluation covers harmful_refusal, benign_compliance, instruction_following, general_retention: they are decided together (Holm across the metrics of one evaluation); run them in one `forgegov eval run` with every suite"}
}

test_a_regression_binds_after_its_suite_was_withdrawn if {
	withdrawn := object.union(passing_metrics, {"harmful_refusal": object.union(metric("harmful_refusal", "inferior", 0.03, 0.1), {"suite_state": "withdrawn"})})
	d := staging_decision([result("e1", withdrawn), result("e2", passing_metrics)])
	not d.allow
	some msg in d.deny
	contains(msg, "regressed on harmful_refusal")
}

test_a_regression_binds_after_its_data_was_withdrawn if {
	regressed := object.union(passing_metrics, {"harmful_refusal": metric("harmful_refusal", "inferior", 0.03, 0.1)})
	gone := object.union(result("e1", regressed), {"datasets": [{"label": "dataset/safety-eval@1", "digest": "sha256:d1", "state": "withdrawn"}]})
	d := staging_decision([gone, result("e2", passing_metrics)])
	some msg in d.deny
	contains(msg, "regressed on harmful_refusal")
}

test_a_never_approved_suites_regression_does_not_bind if {
	unapproved := object.union(passing_metrics, {"harmful_refusal": object.union(metric("harmful_refusal", "inferior", 0.03, 0.1), {"suite_state": "registered"})})
	staging_decision([result("e1", unapproved), result("e2", passing_metrics)]).allow
}

test_a_result_without_its_base_or_datasets_is_not_current if {
	bare := object.remove(result("e1", passing_metrics), ["base_digest", "datasets"])
	d := staging_decision([bare])
	not d.allow
}

# --- reward hacking is a promotion question --------------------------------------

# A grpo run's candidate (completed, approved, provenance verified), evaluated
# against its parent with the results given.
grpo_candidate(results) := object.union(
	object.union(object.union(to_staging, {"subject": {"state": "registered"}}), run_evidence("completed", true, verified)),
	{"evidence": {
		"lineage": {"run": {"method": "grpo", "rewards": ["sha256:r1"]}},
		"evaluation": {"parent_digest": "sha256:p1", "results": results},
	}},
)

grpo_decision(results) := d if {
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], grpo_candidate(results))
}

with_objective(verdict) := object.union(passing_metrics, {"domain_accuracy": object.union(
	metric("domain_accuracy", verdict, 0.05, 0.1),
	{"cluster_spread": 0.3},
)})

test_grpo_candidate_without_the_held_out_objective_denied if {
	d := grpo_decision([result("e1", passing_metrics)])
	"checkpoint claims-sft v3 was trained by grpo against a reward, which can rise while the objective it stands for falls: it needs a drift evaluation of the held-out objective domain_accuracy (scored by a suite, not by the reward) beside the target's metrics" in d.deny
	not d.allow
}

test_grpo_candidate_whose_held_out_objective_fell_denied if {
	d := grpo_decision([result("e1", with_objective("inferior"))])
	not d.allow
	count(d.deny) > 0
}

test_grpo_candidate_with_a_non_inferior_held_out_objective_allowed if {
	grpo_decision([result("e1", with_objective("non-inferior"))]) == {"allow": true, "deny": set(), "missing": set()}
}

test_the_same_evaluation_passes_an_sft_candidate if {
	sft := object.union(grpo_candidate([result("e1", passing_metrics)]), {"evidence": {"lineage": {"run": {"method": "sft"}}}})
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], sft)
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_a_run_whose_recipe_no_longer_verifies_denied if {
	unread := object.union(grpo_candidate([result("e1", with_objective("non-inferior"))]), {"evidence": {"lineage": {"run": {"method": null}}}})
	d := promotion.decision with input as doc("approve", "dave", [new("dave", "approve")], unread)
	"checkpoint claims-sft v3: the registered recipe of run/claims-sft@1 no longer verifies, so the method it was trained with (and the evidence that method owes) cannot be read: restore the recipe file, or train again" in d.deny
}
