# Test fixtures shared by the standard gate tests, so that each gate's tests
# differ only in what they prove about that gate.
package forgegov.lib.fixtures_test

now := "2026-11-22T20:00:00Z"

fresh := "2026-11-22T19:00:00Z"

# 169 hours before now: one hour past the 168 hour limit in data.json.
stale := "2026-11-15T19:00:00Z"

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

# A version 1 document as forgegov assembles it for a standard gate: version 1
# of an asset of the gate's own kind, owned and requested by alice, pending.
# `changes` is merged in.
doc(gate_name, asset, action, actor, approvals, changes) := object.union(
	{
		"version": 1,
		"gate": gate_name,
		"action": action,
		"now": now,
		"actor": {"name": actor, "key_id": concat("", ["key-", actor])},
		"subject": {
			"kind": gate_name,
			"name": asset,
			"version": 1,
			"digest": "sha256:0f",
			"owner": "alice",
			"state": "pending",
			"stage": null,
			"release": null,
		},
		"request": {"id": "req-1", "requested_by": "alice", "requested_at": "2026-11-22T18:00:00Z", "target": null},
		"approvals": approvals,
		"evidence": {},
	},
	changes,
)
