package forgegov.lib.gate_test

import data.forgegov.lib.gate

valid := {
	"version": 1,
	"gate": "dataset",
	"action": "approve",
	"now": "2026-11-22T20:00:00Z",
	"actor": {"name": "bob"},
	"subject": {"kind": "dataset", "name": "claims", "version": 1, "owner": "alice", "state": "pending"},
	"request": {"requested_by": "alice"},
	"approvals": [],
}

envelope(changes) := gate.envelope_denies(object.union(valid, changes), "dataset", "dataset")

test_envelope_accepts_valid_document if envelope({}) == set()

test_envelope_wrong_version if {
	envelope({"version": 2}) == {"input.version must be 1 (got 2): send a version 1 gate document"}
}

test_envelope_wrong_gate if count(envelope({"gate": "reward"})) == 1

test_envelope_unknown_action if {
	envelope({"action": "promote"}) == {"unknown action: input.action must be one of approve, reject, request, withdraw (got \"promote\")"}
}

test_envelope_wrong_kind if {
	envelope({"subject": {"kind": "reward"}}) == {"the dataset gate only governs dataset subjects (got \"reward\"): use the gate for that kind"}
}

test_envelope_missing_actor_name if {
	gate.envelope_denies(json.remove(valid, ["actor/name"]), "dataset", "dataset") == {"input.actor.name is missing: every action must name the person taking it"}
	envelope({"actor": {"name": ""}}) == {"input.actor.name is missing: every action must name the person taking it"}
}

test_envelope_bad_now if count(envelope({"now": "yesterday"})) == 1

test_envelope_approve_needs_requester if {
	gate.envelope_denies(json.remove(valid, ["request"]), "dataset", "dataset") == {"input.request.requested_by is missing: separation of duties cannot be checked without the requester"}
}

test_envelope_request_needs_no_open_request if {
	gate.envelope_denies(json.remove(envelope_request, ["request"]), "dataset", "dataset") == set()
}

envelope_request := object.union(valid, {"action": "request"})

test_envelope_missing_gate_settings if {
	envelope({}) == {"policy data has no settings for the dataset gate: a policy maintainer must add them to data.json"} with data.data.gates as {}
}

test_envelope_empty_document_denies_every_field if count(gate.envelope_denies({}, "dataset", "dataset")) == 6

test_envelope_non_object_document_denies if count(gate.envelope_denies("dataset", "dataset", "dataset")) > 0

test_document_defaults_without_input if gate.document == {}

# Compared field by field: under `opa check --schema policies/schemas/input.json`
# the document has the input schema's type, which a partial literal does not
# unify with.
test_document_is_input if gate.document.version == 1 with input as {"version": 1}

request_doc(actor, owner) := object.union(valid, {"action": "request", "actor": {"name": actor}, "subject": {"owner": owner}})

test_owner_may_request if gate.request_denies(request_doc("grace", "grace"), ["ml-engineer"]) == set()

test_requester_role_may_request if gate.request_denies(request_doc("alice", "grace"), ["ml-engineer"]) == set()

test_neither_owner_nor_role_may_not_request if {
	gate.request_denies(request_doc("mallory", "alice"), ["ml-engineer", "data-steward"]) == {"mallory cannot request this gate for dataset claims v1: only its owner alice or a holder of one of the roles data-steward, ml-engineer may; ask one of them to request it"}
}

test_state_pending_may_be_requested if gate.state_denies(valid) == set()

test_state_approved_denied if {
	gate.state_denies(object.union(valid, {"subject": {"state": "approved"}})) == {"dataset claims v1 is already approved: there is nothing to request"}
}

test_state_rejected_denied if {
	gate.state_denies(object.union(valid, {"subject": {"state": "rejected"}})) == {"dataset claims v1 was rejected: register a new version and request approval for that"}
}

test_state_withdrawn_denied if {
	gate.state_denies(object.union(valid, {"subject": {"state": "withdrawn"}})) == {"dataset claims v1 was withdrawn: register a new version and request approval for that"}
}
