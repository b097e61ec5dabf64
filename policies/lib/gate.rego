# METADATA
# title: forgegov gate envelope checks
# description: >-
#   Checks every gate makes before looking at approvals: the input document is
#   a version 1 document for this gate, names a known action and an actor, and
#   the person opening a request may do so.
package forgegov.lib.gate

import data.forgegov.lib.approvals
import data.forgegov.lib.config

actions := {"request", "approve", "reject", "withdraw"}

# A query sent without any input leaves `input` undefined, and a function
# called with an undefined argument is itself undefined. Falling back to an
# empty document keeps the envelope checks firing, so the gate fails closed.
default document := {}

document := input

# How a field of the input looked, for messages that say what was wrong.
shown(value, key) := json.marshal(value[key]) if {
	value[key] != null
} else := "nothing"

describe(subject) := sprintf(
	"%v %v v%v",
	[object.get(subject, "kind", "subject"), object.get(subject, "name", "(unnamed)"), object.get(subject, "version", "?")],
)

# Every check here is "not <predicate>(inp)" so that any input the policy
# cannot read (wrong types, missing fields) lands in deny. The predicates
# take the whole document on purpose: OPA evaluates a reference passed as an
# argument before the negation, so `not f(inp.field)` with the field absent
# makes the rule body fail instead of denying.
envelope_denies(inp, gate_name, kind) := union({
	{msg |
		not version_ok(inp)
		msg := sprintf("input.version must be 1 (got %s): send a version 1 gate document", [shown(inp, "version")])
	},
	{msg |
		not gate_ok(inp, gate_name)
		msg := sprintf(
			"input.gate must be %q for this policy (got %s): query data.forgegov.gates.<gate>.decision for the document's gate",
			[gate_name, shown(inp, "gate")],
		)
	},
	{msg |
		not action_ok(inp)
		msg := sprintf("unknown action: input.action must be one of approve, reject, request, withdraw (got %s)", [shown(inp, "action")])
	},
	{msg |
		not kind_ok(inp, kind)
		msg := sprintf(
			"the %s gate only governs %s subjects (got %s): use the gate for that kind",
			[gate_name, kind, shown(object.get(inp, "subject", {}), "kind")],
		)
	},
	{msg |
		not actor_ok(inp)
		msg := "input.actor.name is missing: every action must name the person taking it"
	},
	{msg |
		not now_ok(inp)
		msg := sprintf("input.now must be an RFC 3339 time (got %s): approval ages are measured from it", [shown(inp, "now")])
	},
	{msg |
		inp.action in {"approve", "reject"}
		not requester_ok(inp)
		msg := "input.request.requested_by is missing: separation of duties cannot be checked without the requester"
	},
	{msg |
		not settings_ok(gate_name)
		msg := sprintf("policy data has no settings for the %s gate: a policy maintainer must add them to data.json", [gate_name])
	},
})

version_ok(inp) if inp.version == 1

gate_ok(inp, gate_name) if inp.gate == gate_name

action_ok(inp) if inp.action in actions

kind_ok(inp, kind) if inp.subject.kind == kind

actor_ok(inp) if valid_name(inp.actor.name)

now_ok(inp) if time.parse_rfc3339_ns(inp.now)

requester_ok(inp) if valid_name(inp.request.requested_by)

settings_ok(gate_name) if is_object(config.gates[gate_name])

valid_name(name) if {
	is_string(name)
	name != ""
}

may_request(inp, _) if inp.actor.name == inp.subject.owner

may_request(inp, requester_roles) if approvals.holds_any(inp.actor.name, requester_roles)

# The owner may always ask for their own asset to be reviewed; anyone else
# needs one of the gate's requester roles.
request_denies(inp, requester_roles) := {msg |
	not may_request(inp, requester_roles)
	msg := sprintf(
		"%s cannot request this gate for %s: only its owner %v or a holder of %s may; ask one of them to request it",
		[inp.actor.name, describe(inp.subject), object.get(inp.subject, "owner", "(none)"), approvals.role_phrase(requester_roles)],
	)
}

# Registered assets are immutable: once decided, a version is never reviewed
# again, a change means a new version with its own digest.
state_denies(inp) := ({msg |
	inp.subject.state == "approved"
	msg := sprintf("%s is already approved: there is nothing to request", [describe(inp.subject)])
} | {msg |
	inp.subject.state == "rejected"
	msg := sprintf("%s was rejected: register a new version and request approval for that", [describe(inp.subject)])
}) | {msg |
	# A withdrawal is final too: asking again would turn it into "pending",
	# which is neither approved nor withdrawn, and a regression measured with
	# the withdrawn suite, data or judge would stop binding.
	inp.subject.state == "withdrawn"
	msg := sprintf("%s was withdrawn: register a new version and request approval for that", [describe(inp.subject)])
}
