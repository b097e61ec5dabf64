package forgegov.admin_test

import data.forgegov.admin

act(name, actor, target) := {
	"version": 1, "act": name, "now": "2026-11-22T20:00:00Z",
	"actor": {"name": actor, "key_id": concat("", ["key-", actor])}, "target": target, "reason": "a reason",
}

test_policy_owner_revokes_another if {
	d := admin.decision with input as act("identity.revoke", "dave", {"name": "mallory"})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_anyone_revokes_their_own_key if {
	d := admin.decision with input as act("identity.revoke", "alice", {"name": "alice"})
	d.allow
}

test_someone_else_cannot_revoke if {
	d := admin.decision with input as act("identity.revoke", "mallory", {"name": "dave"})
	d.deny == {"mallory may not identity.revoke: only a holder of role policy-owner may, or the identity itself; ask one of them"}
}

test_anyone_rotates_their_own_key if {
	d := admin.decision with input as act("identity.rotate", "alice", {"name": "alice", "key_id": "new"})
	d.allow
}

test_a_lost_key_is_rotated_by_two_policy_owners if {
	first := admin.decision with input as act("identity.rotate", "dave", {"name": "alice", "key_id": "new"})
	first == {"allow": false, "deny": set(), "missing": {"identity.rotate needs the signatures of 2 holders of role policy-owner on the same act; signed so far by dave: another of them signs it too"}}
	second := admin.decision with input as object.union(
		act("identity.rotate", "grace", {"name": "alice", "key_id": "new"}),
		{"cosigners": [{"name": "dave", "key_id": "key-dave", "seq": 4}]},
	)
	second == {"allow": true, "deny": set(), "missing": set()}
}

test_a_cosigner_without_the_role_does_not_count if {
	d := admin.decision with input as object.union(
		act("identity.rotate", "grace", {"name": "alice", "key_id": "new"}),
		{"cosigners": [{"name": "mallory", "key_id": "key-mallory", "seq": 4}]},
	)
	d.missing == {"identity.rotate needs the signatures of 2 holders of role policy-owner on the same act; signed so far by grace: another of them signs it too"}
	not d.allow
}

test_a_denied_act_is_not_left_waiting if {
	d := admin.decision with input as act("identity.rotate", "mallory", {"name": "alice", "key_id": "new"})
	d.missing == set()
	count(d.deny) == 1
}

test_a_malformed_quorum_denies if {
	some bad in [0, 1.5, "2", null]
	d := admin.decision with input as act("identity.revoke", "dave", {"name": "alice"})
		with data.data.admin as {"identity.revoke": {"roles": ["policy-owner"], "quorum": bad}}
	d.deny == {"admin[\"identity.revoke\"].quorum in policy data must be a whole number of at least 1: a policy owner corrects policies/data/data.json"}
}

test_someone_else_cannot_rotate if {
	d := admin.decision with input as act("identity.rotate", "mallory", {"name": "alice", "key_id": "new"})
	d.deny == {"mallory may not identity.rotate: only a holder of role policy-owner may, or the identity itself; ask one of them"}
}

test_privacy_officer_redacts_a_check if {
	d := admin.decision with input as act("audit.redact", "grace", {"seq": 7, "action": "dataset.register"})
	d.allow
}

test_others_cannot_redact if {
	d := admin.decision with input as act("audit.redact", "alice", {"seq": 7, "action": "dataset.register"})
	not d.allow
}

test_decisions_are_never_redacted if {
	d := admin.decision with input as act("audit.redact", "grace", {"seq": 7, "action": "gate.dataset.approve"})
	d.deny == {"entry 7 is a gate.dataset.approve record, which policy data never lets anyone redact (gate.*): the log's decisions and runs must stay provable"}
}

test_unknown_act_denied if {
	d := admin.decision with input as act("identity.create", "dave", {})
	not d.allow
}

test_absent_input_denies if {
	not admin.decision.allow
}

enrolment(actor, name) := act("identity.enrol", actor, {"name": name, "key_id": "new", "contact": "heidi@example.com"})

test_two_policy_owners_enrol_a_listed_person if {
	roles := {"bob": [], "dave": ["policy-owner"], "grace": ["policy-owner"]}
	first := admin.decision with input as enrolment("dave", "bob") with data.data.roles as roles
	not first.allow
	first.missing == {"identity.enrol needs the signatures of 2 holders of role policy-owner on the same act; signed so far by dave: another of them signs it too"}
	second := admin.decision with input as object.union(enrolment("grace", "bob"), {"cosigners": [{"name": "dave", "key_id": "key-dave", "seq": 9}]})
		with data.data.roles as roles
	second.allow
}

test_one_policy_owner_enrols_when_the_data_asks_for_one if {
	d := admin.decision with input as enrolment("dave", "bob")
		with data.data.roles as {"bob": [], "dave": ["policy-owner"]}
		with data.data.admin as {"identity.enrol": {"roles": ["policy-owner"], "listed_only": true, "quorum": 1}}
	d.allow
}

test_nobody_enrols_themselves if {
	d := admin.decision with input as enrolment("heidi", "heidi") with data.data.roles as {"heidi": ["data-steward"]}
	d.deny == {"heidi may not identity.enrol: only a holder of role policy-owner may; ask one of them"}
}

test_an_unlisted_name_is_not_enrolled if {
	d := admin.decision with input as enrolment("dave", "heidi") with data.data.roles as {"dave": ["policy-owner"]}
	d.deny == {"heidi is not named in the policy's roles: enrol only people the policy lists; a policy owner adds heidi to policies/data/data.json first (forgegov policy propose)"}
}

test_enrolment_of_anyone_when_the_data_does_not_ask_for_a_listing if {
	d := admin.decision with input as enrolment("dave", "heidi")
		with data.data.roles as {"dave": ["policy-owner"]}
		with data.data.admin as {"identity.enrol": {"roles": ["policy-owner"]}}
	d.allow
}

run_job(requested_by, state) := {"kind": "run", "run": {"label": "run/cpt@1", "digest": "sha256:r", "state": state, "requested_by": requested_by}, "recent": []}

eval_job(suite_state, recent) := {
	"kind": "evaluation", "candidate": {"label": "checkpoint/c@1", "digest": "sha256:c", "stage": "candidate", "state": "registered"},
	"base": null, "suites": [{"label": "suite/drift@1", "digest": "sha256:s", "state": suite_state}], "batch_size": 8,
	"recent": recent,
}

test_the_requester_trains_their_approved_run if {
	d := admin.decision with input as act("job.start", "alice", run_job("alice", "approved"))
	d.allow
}

test_an_ml_lead_trains_an_approved_run if {
	d := admin.decision with input as act("job.start", "dave", run_job("alice", "approved"))
	d.allow
}

test_another_member_cannot_train_a_run if {
	d := admin.decision with input as act("job.start", "mallory", run_job("alice", "approved"))
	d.deny == {"mallory may not start a job of kind run: only a holder of role ml-lead may, or who asked the run gate for the run; ask one of them"}
}

test_an_unapproved_run_is_not_trained if {
	d := admin.decision with input as act("job.start", "alice", run_job("alice", "pending"))
	d.deny == {"run/cpt@1 is pending: a run is trained only once the run gate approved it; ask for approval first"}
}

test_an_engineer_evaluates if {
	d := admin.decision with input as act("job.start", "alice", eval_job("approved", []))
	d.allow
}

# An evaluation is read by the promotion gate, where every current result
# counts: a member without the role cannot add one (an underpowered one
# would block the candidate).
test_a_member_without_the_role_cannot_evaluate if {
	d := admin.decision with input as act("job.start", "mallory", eval_job("approved", []))
	d.deny == {"mallory may not start a job of kind evaluation: only a holder of one of the roles ml-engineer, ml-lead, release-manager may; ask one of them"}
}

test_an_unapproved_suite_is_not_run if {
	d := admin.decision with input as act("job.start", "alice", eval_job("pending", []))
	d.deny == {"suite suite/drift@1 is pending: an evaluation runs only suites approved at the suite gate; request its approval (forgegov request suite/drift@1 --gate suite --as NAME)"}
}

test_the_quota_counts_starts_within_the_window if {
	recent := [sprintf("2026-11-22T%02d:00:00Z", [h]) | some h in numbers.range(0, 19)]
	d := admin.decision with input as act("job.start", "alice", eval_job("approved", recent))
	d.deny == {"alice started 20 jobs in the last 24 hours, the most policy allows: ask again later, or ask a policy owner to raise admin[\"job.start\"].per_window in policies/data/data.json"}
}

test_starts_before_the_window_do_not_count if {
	recent := array.concat(
		[sprintf("2026-11-21T%02d:00:00Z", [h]) | some h in numbers.range(0, 19)],
		[sprintf("2026-11-22T%02d:00:00Z", [h]) | some h in numbers.range(0, 18)],
	)
	d := admin.decision with input as act("job.start", "alice", eval_job("approved", recent))
	d.allow
}

test_who_started_a_job_stops_it if {
	d := admin.decision with input as act("job.cancel", "alice", {"job": 12, "kind": "run", "started_by": "alice"})
	d.allow
}

test_an_ml_lead_stops_any_job if {
	d := admin.decision with input as act("job.cancel", "dave", {"job": 12, "kind": "run", "started_by": "alice"})
	d.allow
}

test_another_member_cannot_stop_a_job if {
	d := admin.decision with input as act("job.cancel", "mallory", {"job": 12, "kind": "run", "started_by": "alice"})
	d.deny == {"mallory may not job.cancel: only a holder of role ml-lead may, or who started the job; ask one of them"}
}

fetch(kind, classification) := {"subject": "x", "asset": {
	"kind": kind, "label": sprintf("%s/x@1", [kind]), "digest": "sha256:x", "state": "approved",
	"classification": classification, "dataset_kind": null,
}}

test_a_data_steward_fetches_proprietary_data if {
	d := admin.decision with input as act("asset.fetch", "bob", fetch("dataset", "proprietary"))
	d.allow
}

test_a_release_manager_cannot_fetch_proprietary_data if {
	d := admin.decision with input as act("asset.fetch", "erin", fetch("dataset", "proprietary"))
	d.deny == {"erin may not fetch dataset/x@1 (proprietary): only a holder of one of the roles data-steward, ml-engineer, ml-lead, privacy-officer may, or anyone for public or general-curated data; ask one of them"}
}

test_anyone_fetches_public_data_and_checkpoints if {
	admin.decision.allow with input as act("asset.fetch", "mallory", fetch("dataset", "public"))
	admin.decision.allow with input as act("asset.fetch", "mallory", fetch("checkpoint", null))
}

test_an_unlisted_kind_is_not_fetched if {
	d := admin.decision with input as act("asset.fetch", "dave", fetch("widget", null))
	not d.allow
}

test_a_run_of_no_known_state_is_not_trained if {
	d := admin.decision with input as act("job.start", "alice", {"kind": "run", "run": {"label": "run/cpt@1", "requested_by": "alice"}, "recent": []})
	d.deny == {"run/cpt@1 is of no known state: a run is trained only once the run gate approved it; ask for approval first"}
}

test_an_evaluation_without_suites_is_not_run if {
	d := admin.decision with input as act("job.start", "alice", object.union(eval_job("approved", []), {"suites": []}))
	d.deny == {"an evaluation names at least one suite approved at the suite gate: add --suite SUITE"}
}

test_a_suite_of_no_known_state_is_not_run if {
	d := admin.decision with input as act("job.start", "alice", object.union(eval_job("approved", []), {"suites": [{"label": "suite/s@1"}]}))
	not d.allow
}

test_unreadable_times_deny if {
	bad_now := object.union(act("job.start", "alice", eval_job("approved", ["2026-11-22T10:00:00Z"])), {"now": "bogus"})
	d := admin.decision with input as bad_now
	not d.allow
	d2 := admin.decision with input as act("job.start", "alice", eval_job("approved", ["yesterday"]))
	d2.deny == {"the job's time or a recent start's time (yesterday) is not RFC 3339: the start cannot be counted; report this to the server's operator"}
}

test_a_window_longer_than_forgegov_shows_denies if {
	d := admin.decision with input as act("job.start", "alice", eval_job("approved", []))
		with data.data.admin["job.start"].per_window as {"hours": 720, "jobs": 5}
	d.deny == {"admin[\"job.start\"].per_window in policy data needs hours (1 to 168) and jobs (at least 1): a policy owner corrects policies/data/data.json"}
}

test_a_kind_asks_for_its_own_quorum if {
	fetch := {"subject": "claims", "asset": {"kind": "dataset", "label": "dataset/claims@1", "digest": "sha256:d", "state": "approved", "classification": "proprietary", "dataset_kind": "pretraining-text"}}
	d := admin.decision with input as act("asset.fetch", "alice", fetch)
		with data.data.admin as {"asset.fetch": {"kinds": {"dataset": {"roles": ["ml-engineer"], "quorum": 2}}}}
	d.missing == {"asset.fetch needs the signatures of 2 holders of role ml-engineer on the same act; signed so far by alice: another of them signs it too"}
}
