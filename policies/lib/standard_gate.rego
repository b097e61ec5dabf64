# METADATA
# title: forgegov standard gate
# description: >-
#   The rules of a gate that signs off one registered asset against one quorum
#   from data.json: of the kind it is named after (dataset, reward, run), or of
#   another kind through deny_for_kind (the base gate signs off checkpoints).
#   The promotion gate reuses the approval, rejection and missing parts with
#   the quorum of its request's target.
package forgegov.lib.standard_gate

import data.forgegov.lib.approvals
import data.forgegov.lib.config
import data.forgegov.lib.gate

# Always defined, even when data.json has no settings for the gate: deny
# called with an undefined argument is undefined itself, and a gate with
# nothing to deny would allow. missing may be handed an absent quorum, since
# deny then reports that no quorum is set.
settings_of(name) := object.get(config.gates, name, {})

# An empty or absent quorum would let a request approve itself.
quorum_configured(settings) if count(settings.quorum) > 0

# A gate named after the kind of asset it governs (dataset, reward, run).
deny(inp, name, settings) := deny_for_kind(inp, name, name, settings)

# Any gate, given the kind of its subjects: the base gate is named "base" and
# governs checkpoints. Each part reads the settings fields it needs inside its
# own comprehension, so a field absent from data.json drops only the checks
# that need it (the envelope and quorum checks then say what is wrong) rather
# than the whole set.
deny_for_kind(inp, name, kind, settings) := union({
	gate.envelope_denies(inp, name, kind),
	{msg |
		inp.action == "request"
		some msg in gate.request_denies(inp, settings.requesters)
	},
	{msg |
		inp.action == "request"
		some msg in gate.state_denies(inp)
	},
	{msg |
		inp.action in {"request", "approve"}
		not quorum_configured(settings)
		msg := sprintf("policy data sets no quorum for the %s gate: a policy maintainer must add one to data.json", [name])
	},
	{msg | some msg in approval_denies(inp, settings.quorum)},
	{msg | some msg in rejection_denies(inp, settings.rejecters)},
	{msg | some msg in withdrawal_denies(inp, object.get(settings, "withdrawers", []))},
})

# Withdrawing takes an approval back at once, in one signed statement: only a
# holder of a withdrawer role may, and only from an approved subject. A gate
# whose data names no withdrawers cannot withdraw at all.
withdrawal_denies(inp, withdrawers) := {msg |
	inp.action == "withdraw"
	not approvals.actor_holds_any(inp, withdrawers)
	msg := sprintf(
		"%s cannot withdraw %s: only a holder of %s may",
		[inp.actor.name, gate.describe(inp.subject), approvals.role_phrase(withdrawers)],
	)
} | {msg |
	inp.action == "withdraw"
	inp.subject.state != "approved"
	msg := sprintf("%s is %s, not approved: there is no approval to withdraw", [gate.describe(inp.subject), inp.subject.state])
}

# Separation of duties is checked on a request too: the approvals it carries
# must already respect it.
approval_denies(inp, quorum) := {msg |
	inp.action in {"request", "approve"}
	some msg in approvals.separation_denies(inp, object.keys(quorum))
} | {msg |
	inp.action == "approve"
	some msg in approvals.approve_denies(inp, object.keys(quorum))
}

rejection_denies(inp, rejecters) := {msg |
	inp.action == "reject"
	some msg in approvals.reject_denies(inp, rejecters)
}

# A request is pending until its quorum is met; a rejection needs no quorum,
# it only has to come from a rejecter.
missing(inp, quorum) := {msg |
	inp.action in {"request", "approve"}
	some msg in approvals.missing(inp, quorum)
}
