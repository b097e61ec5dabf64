package forgegov.gates.base_test

import data.forgegov.gates.base
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name, the
# checkpoint kind it governs although it is named base, the requesters,
# quorum and rejecters it reads from data.json, and its eligible stages.
# Outsiders hold another gate's role, so wiring this gate to that gate's
# settings would let them through.
doc(action, actor, approvals, changes) := fx.doc(
	"base", "ref-post", action, actor, approvals,
	object.union({"subject": {"kind": "checkpoint", "stage": "post-training", "release": "none"}}, changes),
)

ml_lead_missing := {"1 more approval by role ml-lead (have 0 of 1)"}

# grace owns the asset here, so alice and dave may request only through their
# roles.
test_request_by_engineer_is_pending if {
	d := base.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": ml_lead_missing}
}

test_request_by_ml_lead_is_pending if {
	d := base.decision with input as doc(
		"request", "dave", [],
		{"subject": {"owner": "grace", "state": "registered"}, "request": {"requested_by": "dave"}},
	)
	d == {"allow": false, "deny": set(), "missing": ml_lead_missing}
}

test_request_by_outsider_denied if {
	d := base.decision with input as doc("request", "bob", [], {"request": {"requested_by": "bob"}})
	d.deny == {"bob cannot request this gate for checkpoint ref-post v1: only its owner alice or a holder of one of the roles ml-engineer, ml-lead may; ask one of them to request it"}
	not d.allow
}

test_request_for_approved_checkpoint_denied if {
	d := base.decision with input as doc("request", "alice", [], {"subject": {"state": "approved"}})
	d.deny == {"checkpoint ref-post v1 is already approved: there is nothing to request"}
}

test_approve_by_ml_lead_allows if {
	d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := base.decision with input as doc("approve", "erin", [fx.new("erin", "approve")], {})
	d == {
		"allow": false,
		"deny": {"erin does not hold role ml-lead and cannot approve this gate: ask a holder of role ml-lead"},
		"missing": ml_lead_missing,
	}
}

# ml-lead may request and approve, but never both on one request.
test_ml_lead_cannot_approve_own_request if {
	d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"request": {"requested_by": "dave"}})
	d.deny == {"dave requested this approval and cannot approve it: ask a holder of role ml-lead"}
	not d.allow
}

test_reject_by_ml_lead_allowed if {
	d := base.decision with input as doc("reject", "dave", [fx.new("dave", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_outsider_denied if {
	d := base.decision with input as doc("reject", "erin", [fx.new("erin", "reject")], {})
	d == {
		"allow": false,
		"deny": {"erin does not hold role ml-lead and cannot reject this gate: ask a holder of role ml-lead"},
		"missing": set(),
	}
}

test_wrong_subject_kind_denied if {
	every kind in ["dataset", "base"] {
		d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"subject": {"kind": kind}})
		d.deny == {sprintf("the base gate only governs checkpoint subjects (got %q): use the gate for that kind", [kind])}
	}
}

test_wrong_gate_denied if {
	d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"gate": "promotion"})
	d.deny == {"input.gate must be \"base\" for this policy (got \"promotion\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
	not d.allow
}

test_every_eligible_stage_allows if {
	every stage in ["pre-training", "mid-training", "post-training", "candidate"] {
		d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"subject": {"stage": stage}})
		d.allow
	}
}

stage_msg(shown) := sprintf(
	"checkpoint ref-post v1 is at stage %s and cannot be approved for customisation: only a checkpoint at one of the stages pre-training, mid-training, post-training, candidate can be a training run's starting point; register the checkpoint with --stage set to the stage it was trained to",
	[shown],
)

test_request_without_eligible_stage_denied if {
	d := base.decision with input as doc("request", "alice", [], {"subject": {"stage": null, "state": "registered"}})
	d.deny == {stage_msg("nothing")}
	not d.allow
}

test_approve_of_unknown_stage_denied if {
	d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"subject": {"stage": "distilled"}})
	d.deny == {stage_msg("\"distilled\"")}
	not d.allow
}

test_absent_stage_denied if {
	inp := json.remove(doc("approve", "dave", [fx.new("dave", "approve")], {}), ["subject/stage"])
	d := base.decision with input as inp
	d.deny == {stage_msg("nothing")}
}

test_reject_needs_no_eligible_stage if {
	d := base.decision with input as doc("reject", "dave", [fx.new("dave", "reject")], {"subject": {"stage": null}})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_eligible_stages_come_from_data if {
	d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"subject": {"stage": "pre-training"}})
		with data.data.gates.base.eligible_stages as ["post-training"]
	d.deny == {"checkpoint ref-post v1 is at stage \"pre-training\" and cannot be approved for customisation: only a checkpoint at one of the stages post-training can be a training run's starting point; register the checkpoint with --stage set to the stage it was trained to"}
}

test_absent_eligible_stages_deny if {
	every stages in [[], "post-training", null] {
		d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
			with data.data.gates.base.eligible_stages as stages
		d.deny == {"policy data sets no eligible_stages for the base gate: a policy maintainer must add them to data.json"}
	}
}

test_missing_gate_settings_denied if {
	d := base.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the base gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the base gate: a policy maintainer must add one to data.json",
		"policy data sets no eligible_stages for the base gate: a policy maintainer must add them to data.json",
	}
	not d.allow
}

test_absent_input_denies if {
	not base.decision.allow
	count(base.decision.deny) > 0
	base.decision.missing == set()
}
