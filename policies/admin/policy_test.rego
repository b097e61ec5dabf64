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
