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

test_a_policy_owner_rotates_a_lost_key if {
	d := admin.decision with input as act("identity.rotate", "dave", {"name": "alice", "key_id": "new"})
	d.allow
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

test_a_policy_owner_enrols_a_listed_person if {
	d := admin.decision with input as enrolment("dave", "bob") with data.data.roles as {"bob": [], "dave": ["policy-owner"]}
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
