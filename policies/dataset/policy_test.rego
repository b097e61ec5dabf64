package forgegov.gates.dataset_test

import data.forgegov.gates.dataset
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name and kind, and
# the requesters, quorum and rejecters it reads from data.json. Outsiders hold
# another gate's role, so wiring this gate to that gate's settings would let
# them through.
doc(action, actor, approvals, changes) := fx.doc(
	"dataset", "claims", action, actor, approvals,
	object.union({"subject": clean_subject, "evidence": {"data_quality": [clean_check]}}, changes),
)

# Without the clean check: object.union merges objects, so removing a field
# from the evidence needs a document that never had it.
bare(action, actor, approvals, changes) := fx.doc(
	"dataset", "claims", action, actor, approvals,
	object.union({"subject": clean_subject}, changes),
)

clean_subject := {"dataset_kind": "pretraining-text", "classification": "proprietary", "records": 200}

# The summary of a check that found nothing, as forgegov hands it to OPA.
clean_check := {
	"check_id": "chk-1",
	"result_digest": "sha256:aa",
	"checked_at": "2026-11-22T18:30:00Z",
	"checked_by": "alice",
	"check_version": 1,
	"dataset_digest": "sha256:0f",
	"suite": "pretraining-text",
	"suite_version": 1,
	"suite_digest": "sha256:bb",
	"records": 200,
	"failed": [],
	"duplicates": {"records": 0, "rate": 0, "sample_locations": []},
	"pii": {"records": 0, "rate": 0, "sample_locations": [], "findings": {}},
	"secrets": {"records": 0, "rate": 0, "sample_locations": [], "findings": {}},
	"contamination": {
		"direction": "training-against-eval",
		"compared": [{"dataset": "dataset/heldout@1", "digest": "sha256:cc", "items": 50, "contaminated": 0, "rate": 0, "sample_locations": []}],
		"unchecked": [],
	},
}

# grace owns the asset here, so alice may request only through her role.
test_request_by_engineer_is_pending if {
	d := dataset.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role data-steward (have 0 of 1)"}}
}

test_request_by_steward_is_pending if {
	d := dataset.decision with input as doc(
		"request", "bob", [],
		{"subject": {"owner": "grace", "state": "registered"}, "request": {"requested_by": "bob"}},
	)
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role data-steward (have 0 of 1)"}}
}

test_request_by_outsider_denied if {
	d := dataset.decision with input as doc("request", "carol", [], {"request": {"requested_by": "carol"}})
	d.deny == {"carol cannot request this gate for dataset claims v1: only its owner alice or a holder of one of the roles data-steward, ml-engineer may; ask one of them to request it"}
	not d.allow
}

test_approve_by_data_steward_allows if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := dataset.decision with input as doc("approve", "carol", [fx.new("carol", "approve")], {})
	d == {
		"allow": false,
		"deny": {"carol does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward"},
		"missing": {"1 more approval by role data-steward (have 0 of 1)"},
	}
}

test_reject_by_data_steward_allowed if {
	d := dataset.decision with input as doc("reject", "bob", [fx.new("bob", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_outsider_denied if {
	d := dataset.decision with input as doc("reject", "carol", [fx.new("carol", "reject")], {})
	d == {
		"allow": false,
		"deny": {"carol does not hold role data-steward and cannot reject this gate: ask a holder of role data-steward"},
		"missing": set(),
	}
}

test_wrong_subject_kind_denied if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"subject": {"kind": "reward"}})
	d.deny == {"the dataset gate only governs dataset subjects (got \"reward\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"gate": "reward"})
	d.deny == {"input.gate must be \"dataset\" for this policy (got \"reward\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
	not d.allow
}

test_missing_gate_settings_denied if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the dataset gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the dataset gate: a policy maintainer must add one to data.json",
	}
	not d.allow
}

test_absent_input_denies if {
	not dataset.decision.allow
	count(dataset.decision.deny) > 0
	dataset.decision.missing == set()
}

# Data-quality evidence. Each rule is shown to deny (or hold the gate) on the
# finding it is about, and the clean check beside it shows it does not fire
# otherwise: test_approve_by_data_steward_allows approves the clean check.

justified(name) := object.union(
	fx.new(name, "approve"),
	{"justification": "customer support logs: addresses are the customers' own, kept under contract 7"},
)

with_check(action, actor, approvals, check) := doc(action, actor, approvals, {"evidence": {"data_quality": [check]}})

pii_check := object.union(clean_check, {
	"failed": [{
		"check": "pii", "expectation": "ExpectColumnValuesToBeBetween", "column": "_pii",
		"unexpected_count": 6, "unexpected_percent": 3, "sample_locations": ["a.jsonl:3", "a.jsonl:9"],
	}],
	"pii": {
		"records": 6, "rate": 0.03, "sample_locations": ["a.jsonl:3", "a.jsonl:9"],
		"findings": {"email": {"count": 7, "records": 6, "rate": 0.03, "sample_locations": ["a.jsonl:3"]}},
	},
})

pii_missing := {
	"1 more approval by role privacy-officer (have 0 of 1)",
	"dataset claims v1 has pii findings in 6 of 200 records (3%, above the 0% threshold; e.g. a.jsonl:3, a.jsonl:9): a holder of role privacy-officer must approve with a justification",
}

test_request_without_check_denied if {
	d := dataset.decision with input as bare("request", "alice", [], {})
	d.deny == {"dataset claims v1 has no data-quality check on record: run `forgegov dataset check` on it, then ask again"}
	not d.allow
}

test_approve_without_check_denied if {
	d := dataset.decision with input as bare("approve", "bob", [fx.new("bob", "approve")], {})
	d.deny == {"dataset claims v1 has no data-quality check on record: run `forgegov dataset check` on it, then ask again"}
}

test_reject_needs_no_check if {
	d := dataset.decision with input as bare("reject", "bob", [fx.new("bob", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_check_of_other_bytes_denied if {
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], object.union(clean_check, {"dataset_digest": "sha256:99"}))
	d.deny == {"the data-quality check on record for dataset claims v1 was made on other bytes (sha256:99, not sha256:0f): run `forgegov dataset check` again"}
}

test_check_with_other_suite_denied if {
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], object.union(clean_check, {"suite": "eval"}))
	d.deny == {"dataset claims v1 was checked with the eval suite but is registered as \"pretraining-text\": run `forgegov dataset check` again"}
}

schema_check := object.union(clean_check, {"failed": [{
	"check": "schema", "expectation": "ExpectColumnToExist", "column": "text",
	"unexpected_count": 0, "unexpected_percent": 0, "sample_locations": [],
}]})

test_failed_schema_denies_whoever_approves if {
	msg := "dataset claims v1 failed the schema check (ExpectColumnToExist on text: 0 records, 0%; e.g. no sample): fix the data and register a new version"
	request := dataset.decision with input as with_check("request", "alice", [], schema_check)
	request.deny == {msg}
	approve := dataset.decision with input as with_check("approve", "grace", [fx.new("bob", "approve"), justified("grace")], schema_check)
	msg in approve.deny
	not approve.allow
}

test_unknown_failed_check_denies if {
	check := object.union(clean_check, {"failed": [{
		"check": "encoding", "expectation": "ExpectSomethingNew", "column": "text",
		"unexpected_count": 2, "unexpected_percent": 1.005, "sample_locations": ["a.jsonl:1"],
	}]})
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], check)
	d.deny == {"dataset claims v1 failed the encoding check (ExpectSomethingNew on text: 2 records, 1.01%; e.g. a.jsonl:1): fix the data and register a new version"}
}

test_duplicates_at_threshold_allowed if {
	check := object.union(clean_check, {"duplicates": {"records": 2, "rate": 0.01, "sample_locations": ["a.jsonl:4"]}})
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], check)
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_duplicates_above_threshold_denied if {
	check := object.union(clean_check, {"duplicates": {"records": 4, "rate": 0.02, "sample_locations": ["a.jsonl:4", "a.jsonl:5"]}})
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], check)
	d.deny == {"dataset claims v1 repeats records: 4 records (2%) are duplicates, above the 1% threshold (e.g. a.jsonl:4, a.jsonl:5): deduplicate and register a new version"}
}

test_pii_request_asks_for_privacy_officer if {
	d := dataset.decision with input as with_check("request", "alice", [], pii_check)
	d == {
		"allow": false, "deny": set(),
		"missing": (pii_missing | {"1 more approval by role data-steward (have 0 of 1)"}),
	}
}

test_pii_steward_alone_is_not_enough if {
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], pii_check)
	d == {"allow": false, "deny": set(), "missing": pii_missing}
}

test_pii_privacy_officer_without_justification_denied if {
	d := dataset.decision with input as with_check("approve", "grace", [fx.earlier("bob"), fx.new("grace", "approve")], pii_check)
	d.deny == {"grace's approval of dataset claims v1 must give a justification of at least 20 characters for its pii findings: approve again with --comment explaining why the data may be used"}
	not d.allow
}

test_pii_short_justification_denied if {
	short := object.union(fx.new("grace", "approve"), {"justification": "   fine   "})
	d := dataset.decision with input as with_check("approve", "grace", [fx.earlier("bob"), short], pii_check)
	count(d.deny) == 1
	not d.allow
}

test_pii_privacy_officer_with_justification_allows if {
	d := dataset.decision with input as with_check("approve", "grace", [fx.earlier("bob"), justified("grace")], pii_check)
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_privacy_officer_alone_is_not_enough if {
	d := dataset.decision with input as with_check("approve", "grace", [justified("grace")], pii_check)
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role data-steward (have 0 of 1)"}}
}

test_privacy_officer_cannot_approve_clean_data if {
	d := dataset.decision with input as doc("approve", "grace", [justified("grace")], {})
	"grace does not hold role data-steward and cannot approve this gate: ask a holder of role data-steward" in d.deny
	not d.allow
}

test_secrets_need_privacy_officer_too if {
	check := object.union(clean_check, {"secrets": {
		"records": 1, "rate": 0.005, "sample_locations": ["a.jsonl:17"],
		"findings": {"api-key": {"count": 1, "records": 1, "rate": 0.005, "sample_locations": ["a.jsonl:17"]}},
	}})
	pending := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], check)
	pending.missing == {
		"1 more approval by role privacy-officer (have 0 of 1)",
		"dataset claims v1 has secrets findings in 1 of 200 records (0.5%, above the 0% threshold; e.g. a.jsonl:17): a holder of role privacy-officer must approve with a justification",
	}
	allowed := dataset.decision with input as with_check("approve", "grace", [fx.earlier("bob"), justified("grace")], check)
	allowed.allow
}

test_pii_under_raised_threshold_needs_no_review if {
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], pii_check)
		with data.data.data_quality.pii.max_record_rate as 0.05
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_pii_without_review_quorum_in_data_denied if {
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], pii_check)
		with data.data.data_quality as {"checkers": ["ml-engineer", "data-steward"]}
	"policy data sets no sensitive_review quorum for datasets with PII or secret findings: a policy maintainer must add one to data.json" in d.deny
	not d.allow
}

test_missing_thresholds_let_no_finding_through if {
	check := object.union(clean_check, {"duplicates": {"records": 1, "rate": 0.005, "sample_locations": ["a.jsonl:2"]}})
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], check)
		with data.data.data_quality as {"checkers": ["ml-engineer", "data-steward"]}
	d.deny == {"dataset claims v1 repeats records: 1 records (0.5%) are duplicates, above the 0% threshold (e.g. a.jsonl:2): deduplicate and register a new version"}
}

test_contamination_denied if {
	check := object.union(clean_check, {"contamination": {"direction": "training-against-eval", "unchecked": [], "compared": [{
		"dataset": "dataset/heldout@1", "digest": "sha256:cc", "items": 50, "contaminated": 2, "rate": 0.04,
		"sample_locations": ["eval.jsonl:7", "eval.jsonl:31"],
	}]}})
	d := dataset.decision with input as with_check("approve", "bob", [fx.new("bob", "approve")], check)
	d.deny == {"dataset claims v1 overlaps dataset/heldout@1: 2 of 50 eval items (4%) share 13-word sequences with training text (e.g. eval.jsonl:7, eval.jsonl:31), above the 0% threshold: remove them and register a new version"}
}

test_unverifiable_counterpart_denied if {
	check := object.union(clean_check, {"contamination": {"direction": "training-against-eval", "compared": [], "unchecked": [{
		"dataset": "dataset/heldout@1", "digest": "sha256:cc", "reason": "eval.jsonl changed since registration",
	}]}})
	d := dataset.decision with input as with_check("request", "alice", [], check)
	d.deny == {"contamination of dataset claims v1 against dataset/heldout@1 could not be checked (eval.jsonl changed since registration): restore that dataset's files, then run `forgegov dataset check` again"}
}

test_check_without_figures_denied if {
	check := object.remove(clean_check, ["pii", "contamination"])
	d := dataset.decision with input as bare("approve", "bob", [fx.new("bob", "approve")], {"evidence": {"data_quality": [check]}})
	d.deny == {
		"the data-quality check of dataset claims v1 reports no pii rate: run `forgegov dataset check` again with this forgegov version",
		"the data-quality check of dataset claims v1 has no contamination result: run `forgegov dataset check` again",
	}
}

test_unknown_kind_and_classification_denied if {
	d := dataset.decision with input as doc("request", "alice", [], {"subject": {"dataset_kind": "images", "classification": null}})
	"dataset claims v1 has no known dataset kind (got \"images\"): register it with --kind one of eval, preference, pretraining-text, rl-prompts, sft-chat" in d.deny
	"dataset claims v1 has no known classification (got nothing): register it with --classification one of general-curated, proprietary, public" in d.deny
}

test_proprietary_needs_named_owner if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"subject": {"owner": ""}})
	d.deny == {"dataset claims v1 is proprietary data and names no owner: register it again with --owner set to the person accountable for it"}
	public := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"subject": {"owner": "", "classification": "public"}})
	public.allow
}

test_absent_fields_deny_rather_than_pass if {
	failure := {"expectation": "ExpectColumnToExist", "column": "text", "unexpected_count": 0, "unexpected_percent": 0, "sample_locations": []}
	check := object.union(clean_check, {"failed": [failure]})
	d := dataset.decision with input as fx.doc("dataset", "claims", "approve", "bob", [fx.new("bob", "approve")], {
		"subject": {"owner": null, "classification": "proprietary"},
		"evidence": {"data_quality": [check]},
	})
	"dataset claims v1 has no known dataset kind (got nothing): register it with --kind one of eval, preference, pretraining-text, rl-prompts, sft-chat" in d.deny
	"dataset claims v1 is proprietary data and names no owner: register it again with --owner set to the person accountable for it" in d.deny
	"dataset claims v1 failed the unnamed check (ExpectColumnToExist on text: 0 records, 0%; e.g. no sample): fix the data and register a new version" in d.deny
}

# Every current check counts: a clean check recorded later does not hide what an
# earlier check of the same bytes found.
test_a_later_clean_check_does_not_hide_earlier_findings if {
	earlier := object.union(pii_check, {"check_id": "chk-0", "checked_by": "bob"})
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"evidence": {"data_quality": [clean_check, earlier]}})
	not d.allow
	count(d.missing) > 0
}

test_a_check_by_someone_without_a_checker_role_does_not_count if {
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"evidence": {"data_quality": [object.union(clean_check, {"checked_by": "mallory"})]}})
	d.deny == {"dataset claims v1 has no data-quality check signed by a holder of one of the roles data-steward, ml-engineer: one of them must run `forgegov dataset check` on it"}
}

test_a_newer_suite_version_supersedes_older_checks if {
	older := object.union(pii_check, {"check_id": "chk-0", "suite_version": 1})
	newer := object.union(clean_check, {"suite_version": 2})
	d := dataset.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {"evidence": {"data_quality": [older, newer]}})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_a_data_steward_withdraws_an_approved_dataset if {
	d := dataset.decision with input as doc("withdraw", "bob", [], {"subject": {"state": "approved"}})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_withdrawing_needs_a_withdrawer_role if {
	d := dataset.decision with input as doc("withdraw", "alice", [], {"subject": {"state": "approved"}})
	d.deny == {"alice cannot withdraw dataset claims v1: only a holder of one of the roles data-steward, privacy-officer may"}
}

test_only_an_approval_can_be_withdrawn if {
	d := dataset.decision with input as doc("withdraw", "bob", [], {"subject": {"state": "pending"}})
	d.deny == {"dataset claims v1 is pending, not approved: there is no approval to withdraw"}
}
