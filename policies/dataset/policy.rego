# METADATA
# title: forgegov dataset gate
# description: >-
#   Decides request, approve and reject actions on the dataset gate: a data
#   steward signs off a registered dataset version before training may use it,
#   on the evidence of its newest data-quality check. Failed schema, field and
#   length checks always deny; duplicates and contamination deny above the
#   thresholds in data.json; PII or secrets above their thresholds need a
#   privacy officer's approval with a written justification as well.
package forgegov.gates.dataset

import data.forgegov.lib.approvals
import data.forgegov.lib.config
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

inp := gate.document

thresholds := config.data_quality

base_settings := standard_gate.settings_of("dataset")

known_kinds := {"pretraining-text", "sft-chat", "preference", "rl-prompts", "eval"}

known_classifications := {"proprietary", "general-curated", "public"}

# Findings of these checks are weighed against thresholds below; a failure of
# any other check (schema, required fields, lengths, or one added later)
# denies outright.
weighed_checks := {"duplicates", "pii", "secrets"}

# Evidence is read when a review is asked for and when it is given; a
# rejection needs none.
evidence_actions := {"request", "approve"}

subject_name := gate.describe(object.get(inp, "subject", {}))

pct(rate) := round(rate * 10000) / 100

examples(locations) := concat(", ", locations) if count(locations) > 0

examples(locations) := "no sample" if count(locations) == 0

# Every check of the subject's bytes counts, if a holder of a checker role
# (data_quality.checkers) signed it, until a check under a newer suite version
# supersedes it: a finding in any current check stands, whatever a later check
# of the same bytes says. The rules below speak of each current check as dq.
checks := object.get(object.get(inp, "evidence", {}), "data_quality", [])

checker_roles := object.get(thresholds, "checkers", [])

counted contains check if {
	some check in checks
	approvals.holds_any(check.checked_by, checker_roles)
}

newest_suite := max({check.suite_version | some check in counted})

current contains check if {
	some check in counted
	check.suite_version == newest_suite
}

# Thresholds absent from data.json read as zero: nothing gets through by omission.
limit(path) := object.get(thresholds, path, 0)

# PII and secrets above their thresholds: each adds the review quorum and
# explains itself while that review is missing.
sensitive_excess contains category if {
	inp.action in evidence_actions
	some category in ["pii", "secrets"]
	some dq in current
	dq[category].rate > limit([category, "max_record_rate"])
}

review := object.get(thresholds, "sensitive_review", {})

review_quorum := object.get(review, "quorum", {})

review_roles := object.keys(review_quorum)

quorum := object.union(base_settings.quorum, review_quorum) if {
	count(sensitive_excess) > 0
	count(base_settings.quorum) > 0
} else := object.get(base_settings, "quorum", {})

# Without a quorum in data.json the settings keep none, so the standard checks
# report that instead of judging approvers against an empty role list.
settings := object.union(base_settings, {"quorum": quorum}) if {
	count(quorum) > 0
} else := base_settings

# Predicates over whole documents, as in lib/gate.rego: `not f(x.field)` with
# the field absent fails the rule body instead of denying.
kind_known(doc) if doc.subject.dataset_kind in known_kinds

classification_known(doc) if doc.subject.classification in known_classifications

owner_named(doc) if gate.valid_name(doc.subject.owner)

weighed(failure) if failure.check in weighed_checks

has_rate(check, category) if is_number(check[category].rate)

has_contamination(check) if is_array(check.contamination.compared)

# deny and missing are partial sets so that rules on this gate's own evidence
# add to them beside the standard ones. gate.document rather than input keeps
# the envelope checks firing when no input was sent at all.
deny contains msg if some msg in standard_gate.deny(inp, "dataset", settings)

deny contains msg if {
	inp.action in evidence_actions
	not kind_known(inp)
	msg := sprintf(
		"%s has no known dataset kind (got %s): register it with --kind one of %s",
		[subject_name, gate.shown(inp.subject, "dataset_kind"), concat(", ", sort(known_kinds))],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	not classification_known(inp)
	msg := sprintf(
		"%s has no known classification (got %s): register it with --classification one of %s",
		[subject_name, gate.shown(inp.subject, "classification"), concat(", ", sort(known_classifications))],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	inp.subject.classification in object.get(thresholds, "owner_required", [])
	not owner_named(inp)
	msg := sprintf(
		"%s is %s data and names no owner: register it again with --owner set to the person accountable for it",
		[subject_name, inp.subject.classification],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	count(checks) == 0
	msg := sprintf(
		"%s has no data-quality check on record: run `forgegov dataset check` on it, then ask again",
		[subject_name],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	count(checks) > 0
	count(counted) == 0
	msg := sprintf(
		"%s has no data-quality check signed by a holder of %s: one of them must run `forgegov dataset check` on it",
		[subject_name, approvals.role_phrase(checker_roles)],
	)
}

deny contains msg if {
	some dq in current
	dq.dataset_digest != inp.subject.digest
	msg := sprintf(
		"the data-quality check on record for %s was made on other bytes (%v, not %v): run `forgegov dataset check` again",
		[subject_name, dq.dataset_digest, inp.subject.digest],
	)
}

deny contains msg if {
	some dq in current
	dq.suite != inp.subject.dataset_kind
	msg := sprintf(
		"%s was checked with the %v suite but is registered as %v: run `forgegov dataset check` again",
		[subject_name, dq.suite, gate.shown(inp.subject, "dataset_kind")],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some dq in current
	some failure in dq.failed
	not weighed(failure)
	msg := sprintf(
		"%s failed the %v check (%v on %v: %v records, %v%%; e.g. %s): fix the data and register a new version",
		[
			subject_name, object.get(failure, "check", "unnamed"), object.get(failure, "expectation", "?"),
			object.get(failure, "column", "?"), object.get(failure, "unexpected_count", "?"),
			round(object.get(failure, "unexpected_percent", 0) * 100) / 100,
			examples(object.get(failure, "sample_locations", [])),
		],
	)
}

# A check made by an older forgegov, or an edited one, may lack a figure the
# rules compare; comparing nothing would pass, so it denies.
deny contains msg if {
	inp.action in evidence_actions
	some dq in current
	some category in ["duplicates", "pii", "secrets"]
	not has_rate(dq, category)
	msg := sprintf(
		"the data-quality check of %s reports no %s rate: run `forgegov dataset check` again with this forgegov version",
		[subject_name, category],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some dq in current
	dq.duplicates.rate > limit(["max_duplicate_rate"])
	msg := sprintf(
		"%s repeats records: %v records (%v%%) are duplicates, above the %v%% threshold (e.g. %s): deduplicate and register a new version",
		[
			subject_name, dq.duplicates.records, pct(dq.duplicates.rate), pct(limit(["max_duplicate_rate"])),
			examples(dq.duplicates.sample_locations),
		],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some dq in current
	not has_contamination(dq)
	msg := sprintf(
		"the data-quality check of %s has no contamination result: run `forgegov dataset check` again",
		[subject_name],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some dq in current
	some other in dq.contamination.compared
	other.rate > limit(["max_contamination_rate"])
	msg := sprintf(
		"%s overlaps %s: %v of %v eval items (%v%%) share 13-word sequences with training text (e.g. %s), above the %v%% threshold: remove them and register a new version",
		[
			subject_name, other.dataset, other.contaminated, other.items, pct(other.rate),
			examples(other.sample_locations), pct(limit(["max_contamination_rate"])),
		],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	some dq in current
	some other in dq.contamination.unchecked
	msg := sprintf(
		"contamination of %s against %s could not be checked (%v): restore that dataset's files, then run `forgegov dataset check` again",
		[subject_name, other.dataset, other.reason],
	)
}

deny contains msg if {
	count(sensitive_excess) > 0
	count(review_quorum) == 0
	msg := "policy data sets no sensitive_review quorum for datasets with PII or secret findings: a policy maintainer must add one to data.json"
}

min_justification := object.get(review, "min_justification_chars", 1)

justified(approval) if count(trim_space(object.get(approval, "justification", ""))) >= min_justification

# A privacy officer's approval is what lets sensitive findings through, so it
# must say why; the justification is part of the signed statement.
deny contains msg if {
	count(sensitive_excess) > 0
	some approval in inp.approvals
	approval.verdict == "approve"
	approvals.holds_any(approval.approver, review_roles)
	not justified(approval)
	msg := sprintf(
		"%s's approval of %s must give a justification of at least %v characters for its %s findings: approve again with --comment explaining why the data may be used",
		[approval.approver, subject_name, min_justification, concat(" and ", sort(sensitive_excess))],
	)
}

missing contains msg if some msg in standard_gate.missing(inp, settings.quorum)

# Said beside the quorum message while the review is short, so the requester
# knows why a privacy officer is asked.
missing contains msg if {
	some dq in current
	some category in sensitive_excess
	count(approvals.missing(inp, review_quorum)) > 0
	figures := dq[category]
	msg := sprintf(
		"%s has %s findings in %v of %v records (%v%%, above the %v%% threshold; e.g. %s): a holder of %s must approve with a justification",
		[
			subject_name, category, figures.records, dq.records, pct(figures.rate),
			pct(limit([category, "max_record_rate"])), examples(figures.sample_locations),
			approvals.role_phrase(review_roles),
		],
	)
}

default allow := false

allow if {
	count(deny) == 0
	count(missing) == 0
}

# Never reached while allow has its default; it keeps the answer well-formed
# (and denying) should a later edit leave decision undefined.
default decision := {
	"allow": false,
	"deny": ["the dataset gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Dataset gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}
