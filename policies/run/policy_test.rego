package forgegov.gates.run_test

import data.forgegov.gates.run
import data.forgegov.lib.fixtures_test as fx

# What every standard gate does is tested once, in lib/standard_gate_test.rego.
# These tests prove this gate's wiring, each both ways: its name and kind, and
# the requesters, quorum and rejecters it reads from data.json. Outsiders hold
# another gate's role, so wiring this gate to that gate's settings would let
# them through. The evidence tests below show each rule on the recipe, its
# base and its sources denying, and the valid evidence beside them shows it
# does not fire otherwise: test_approve_by_ml_lead_allows approves it.
doc(action, actor, approvals, changes) := fx.doc(
	"run", "claims-cpt", action, actor, approvals,
	object.union({"evidence": {"run": valid_run}}, changes),
)

# Without the valid evidence: object.union merges objects, so removing a part
# of the evidence needs a document that never had it.
bare(action, actor, approvals, changes) := fx.doc("run", "claims-cpt", action, actor, approvals, changes)

with_run(action, actor, approvals, evidence) := bare(action, actor, approvals, {"evidence": {"run": evidence}})

# The evidence forgegov gathers for a valid cpt recipe from the approved
# post-training reference checkpoint: 75 % proprietary text, 20 % general
# text and 5 % replay, every dataset approved.
valid_recipe := {
	"valid": true,
	"digest": "sha256:5e",
	"name": "claims-cpt",
	"method": "cpt",
	"seed": 1,
	"stopping": "first_exhausted",
	"train": {
		"max_steps": 300, "batch_size": 8, "seq_len": 128, "learning_rate": 0.0003, "warmup_steps": 30,
		"decay": "cosine", "min_lr_ratio": 0.1, "weight_decay": 0.0, "grad_clip": 1.0, "lora": false,
	},
	"devices": {"kind": "cpu", "count": 1},
}

valid_base := {
	"ref": "ref-post", "found": true, "label": "checkpoint/ref-post@1", "digest": "sha256:b0",
	"state": "approved", "stage": "post-training", "release": "none", "owner": "alice",
}

source(name, role, share, kind, classification) := {
	"ref": name, "role": role, "share": share, "found": true, "label": sprintf("dataset/%s@1", [name]),
	"digest": "sha256:d0", "state": "approved", "dataset_kind": kind, "classification": classification,
	"owner": "alice",
}

claims := source("claims", "proprietary", 0.75, "pretraining-text", "proprietary")

general := source("general-train", "general", 0.2, "pretraining-text", "general-curated")

replay := source("sft-general-mix", "replay", 0.05, "pretraining-text", "public")

valid_run := {"recipe": valid_recipe, "base": valid_base, "sources": [claims, general, replay]}

with_sources(list) := object.union(valid_run, {"sources": list})

approve(evidence) := with_run("approve", "dave", [fx.new("dave", "approve")], evidence)

# The deny set of the ML lead's approval on this evidence.
denies(evidence) := d.deny if {
	d := run.decision with input as approve(evidence)
}

allows(evidence) if {
	d := run.decision with input as approve(evidence)
	d == {"allow": true, "deny": set(), "missing": set()}
}

# --- wiring -------------------------------------------------------------------

# grace owns the asset here, so alice may request only through her role.
test_request_by_engineer_is_pending if {
	d := run.decision with input as doc("request", "alice", [], {"subject": {"owner": "grace", "state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role ml-lead (have 0 of 1)"}}
}

test_request_by_outsider_denied if {
	d := run.decision with input as doc("request", "bob", [], {"request": {"requested_by": "bob"}})
	d.deny == {"bob cannot request this gate for run claims-cpt v1: only its owner alice or a holder of role ml-engineer may; ask one of them to request it"}
	not d.allow
}

test_approve_by_ml_lead_allows if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_approve_by_outsider_denied if {
	d := run.decision with input as doc("approve", "bob", [fx.new("bob", "approve")], {})
	d == {
		"allow": false,
		"deny": {"bob does not hold role ml-lead and cannot approve this gate: ask a holder of role ml-lead"},
		"missing": {"1 more approval by role ml-lead (have 0 of 1)"},
	}
}

test_reject_by_ml_lead_allowed if {
	d := run.decision with input as doc("reject", "dave", [fx.new("dave", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_reject_by_outsider_denied if {
	d := run.decision with input as doc("reject", "bob", [fx.new("bob", "reject")], {})
	d == {
		"allow": false,
		"deny": {"bob does not hold role ml-lead and cannot reject this gate: ask a holder of role ml-lead"},
		"missing": set(),
	}
}

test_wrong_subject_kind_denied if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"subject": {"kind": "checkpoint"}})
	d.deny == {"the run gate only governs run subjects (got \"checkpoint\"): use the gate for that kind"}
	not d.allow
}

test_wrong_gate_denied if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {"gate": "promotion"})
	d.deny == {"input.gate must be \"run\" for this policy (got \"promotion\"): query data.forgegov.gates.<gate>.decision for the document's gate"}
	not d.allow
}

test_missing_gate_settings_denied if {
	d := run.decision with input as doc("approve", "dave", [fx.new("dave", "approve")], {})
		with data.data.gates as {}
	d.deny == {
		"policy data has no settings for the run gate: a policy maintainer must add them to data.json",
		"policy data sets no quorum for the run gate: a policy maintainer must add one to data.json",
		"policy data sets no base_stages for the run gate: a policy maintainer must add them to data.json",
		"policy data sets no method_dataset_kinds for the run gate: a policy maintainer must add them to data.json",
		"policy data sets no role_classifications for the run gate: a policy maintainer must add them to data.json",
		"policy data sets no gates.run.mixture.cpt.min_retained_share: a policy maintainer must add it to data.json (until then no cpt run passes)",
		"policy data sets no gates.run.mixture.cpt.min_replay_share_post_training: a policy maintainer must add it to data.json (until then no cpt run from a post-training base passes)",
	}
	not d.allow
}

test_absent_input_denies if {
	not run.decision.allow
	count(run.decision.deny) > 0
	run.decision.missing == set()
}

# --- the evidence is there ------------------------------------------------------

no_evidence := "run claims-cpt v1 has no run evidence (input.evidence.run): submit the action again through forgegov, which reads the run's registered recipe, its base checkpoint and its sources"

test_request_without_evidence_denied if {
	d := run.decision with input as bare("request", "alice", [], {})
	d.deny == {no_evidence}
	not d.allow
}

test_approve_without_evidence_denied if {
	d := run.decision with input as bare("approve", "dave", [fx.new("dave", "approve")], {})
	d.deny == {no_evidence}
	not d.allow
}

test_evidence_of_another_type_denied if {
	every evidence in ["valid", [], null, true] {
		denies(evidence) == {no_evidence}
	}
}

test_reject_needs_no_evidence if {
	d := run.decision with input as bare("reject", "dave", [fx.new("dave", "reject")], {})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_pending_request_with_valid_evidence if {
	d := run.decision with input as doc("request", "alice", [], {"subject": {"state": "registered"}})
	d == {"allow": false, "deny": set(), "missing": {"1 more approval by role ml-lead (have 0 of 1)"}}
}

# --- the recipe -----------------------------------------------------------------

unverified(problem) := sprintf(
	"the recipe of run claims-cpt v1 could not be verified: %s: restore the registered recipe file, or fix the recipe and start it as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
	[problem],
)

# Without a valid recipe forgegov sends neither base nor sources; their rules
# stay silent and the problem is said once.
test_invalid_recipe_denied_with_its_problem if {
	evidence := {"recipe": {"valid": false, "problem": "recipe field train.warmup_steps must be below train.max_steps (300), got 300"}}
	denies(evidence) == {unverified("recipe field train.warmup_steps must be below train.max_steps (300), got 300")}
	d := run.decision with input as with_run("request", "alice", [], evidence)
	d.deny == {unverified("recipe field train.warmup_steps must be below train.max_steps (300), got 300")}
}

test_recipe_valid_must_be_exactly_true if {
	every valid in ["true", 1, false] {
		denies({"recipe": object.union(valid_recipe, {"valid": valid})}) == {unverified(sprintf("recipe.valid is %s, not true, and no problem is named", [json.marshal(valid)]))}
	}
	denies({"recipe": object.union(valid_recipe, {"valid": null})}) == {unverified("recipe.valid is nothing, not true, and no problem is named")}
	denies({"recipe": object.remove(valid_recipe, ["valid"])}) == {unverified("recipe.valid is nothing, not true, and no problem is named")}
}

test_absent_recipe_denied if {
	denies(object.remove(valid_run, ["recipe"])) == {unverified("the evidence holds no recipe")}
	denies(object.union(valid_run, {"recipe": "claims-cpt"})) == {unverified("the evidence holds no recipe")}
}

test_reject_of_unverified_recipe_is_decidable if {
	d := run.decision with input as with_run("reject", "dave", [fx.new("dave", "reject")], {"recipe": {"valid": false, "problem": "bytes changed"}})
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_unknown_method_denied if {
	denies(object.union(valid_run, {"recipe": {"method": "dpo"}})) == {"the recipe of run claims-cpt v1 has unknown method \"dpo\": set method to one of cpt, grpo, sft and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
	denies({"recipe": object.remove(valid_recipe, ["method"]), "base": valid_base, "sources": [claims, general, replay]}) == {"the recipe of run claims-cpt v1 has unknown method nothing: set method to one of cpt, grpo, sft and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

# --- the base checkpoint -----------------------------------------------------------

test_base_not_found_denied if {
	evidence := object.union(valid_run, {"base": {"ref": "ref-x", "found": false, "problem": "no registered checkpoint matches 'ref-x'"}})
	denies(with_sources_base(evidence)) == {"the base checkpoint ref-x of run claims-cpt v1 cannot be used: no registered checkpoint matches 'ref-x': register it (`forgegov checkpoint register`) and ask again, or set checkpoint in the recipe's [base] table to a registered checkpoint and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

# A base that was not found carries only ref, found and problem.
with_sources_base(evidence) := {"recipe": evidence.recipe, "sources": evidence.sources, "base": object.filter(evidence.base, ["ref", "found", "problem"])}

test_absent_base_denied if {
	denies(object.remove(valid_run, ["base"])) == {"the base checkpoint (none) of run claims-cpt v1 cannot be used: the evidence names no base checkpoint: register it (`forgegov checkpoint register`) and ask again, or set checkpoint in the recipe's [base] table to a registered checkpoint and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

test_base_found_not_exactly_true_denied if {
	count(denies(object.union(valid_run, {"base": {"found": "yes"}}))) == 1
	count(denies(object.union(valid_run, {"base": "ref-post"}))) == 1
}

test_registered_base_denied_with_request_command if {
	denies(object.union(valid_run, {"base": {"state": "registered"}})) == {"checkpoint/ref-post@1, the base of run claims-cpt v1, is not approved for customisation (state \"registered\"): request it with `forgegov request checkpoint/ref-post@1 --gate base --as NAME`; a holder of role ml-lead approves it"}
}

test_pending_base_denied_with_approve_command if {
	denies(object.union(valid_run, {"base": {"state": "pending"}})) == {"checkpoint/ref-post@1, the base of run claims-cpt v1, is not approved for customisation (state \"pending\"): its base request is open: a holder of role ml-lead must approve it (`forgegov approve checkpoint/ref-post@1 --gate base --as NAME`)"}
}

test_rejected_base_denied if {
	denies(object.union(valid_run, {"base": {"state": "rejected"}})) == {"checkpoint/ref-post@1, the base of run claims-cpt v1, was rejected for customisation: set checkpoint in the recipe's [base] table to an approved checkpoint and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

test_base_without_state_denied if {
	denies(object.union(object.remove(valid_run, ["base"]), {"base": object.remove(valid_base, ["state"])})) == {"checkpoint/ref-post@1, the base of run claims-cpt v1, is not approved for customisation (state nothing): request it with `forgegov request checkpoint/ref-post@1 --gate base --as NAME`; a holder of role ml-lead approves it"}
}

base_stage_msg(stage, stages) := sprintf(
	"checkpoint/ref-post@1, the base of run claims-cpt v1, is at stage %s; training runs start only from checkpoints at one of the stages %s: set checkpoint in the recipe's [base] table to such a checkpoint",
	[stage, stages],
)

test_every_base_stage_in_data_allows if {
	every stage in ["pre-training", "mid-training", "post-training", "candidate"] {
		allows(object.union(valid_run, {"base": {"stage": stage}}))
	}
}

test_base_stage_outside_data_denied if {
	denies(object.union(valid_run, {"base": {"stage": null}})) == {base_stage_msg("nothing", "pre-training, mid-training, post-training, candidate")}
	denies(object.union(valid_run, {"base": {"stage": "post-training"}})) == {base_stage_msg("\"post-training\"", "pre-training, mid-training")} with data.data.gates.run.base_stages as ["pre-training", "mid-training"]
}

test_absent_base_stages_denied if {
	every stages in [[], "post-training"] {
		denies(valid_run) == {"policy data sets no base_stages for the run gate: a policy maintainer must add them to data.json"} with data.data.gates.run.base_stages as stages
	}
}

# --- the sources ---------------------------------------------------------------------

test_no_sources_denied if {
	msg := "the recipe of run claims-cpt v1 trains on no sources: add [[mixture.sources]] tables naming approved datasets and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"
	denies(with_sources([])) == {msg}
	denies(object.remove(valid_run, ["sources"])) == {msg}
	denies(object.union(valid_run, {"sources": {"claims": claims}})) == {msg}
}

test_source_not_found_denied if {
	lost := {"ref": "general-x", "role": "general", "share": 0.2, "found": false, "problem": "no registered dataset matches 'general-x'"}
	denies(with_sources([claims, lost, replay])) == {"source general-x (role general) of run claims-cpt v1 cannot be used: no registered dataset matches 'general-x': register it (`forgegov dataset register`) and ask again, or fix dataset in its [[mixture.sources]] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

test_malformed_source_denied if {
	denies(with_sources(["general-train", claims])) == {
		"source (no dataset named) (role none) of run claims-cpt v1 cannot be used: the evidence says it was not found: register it (`forgegov dataset register`) and ask again, or fix dataset in its [[mixture.sources]] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		"source (no dataset named) of run claims-cpt v1 has unknown role nothing: set role in its [[mixture.sources]] table to one of general, proprietary, replay",
		"source (no dataset named) of run claims-cpt v1 has share nothing: set share in its [[mixture.sources]] table to a number in (0, 1]",
	}
}

test_registered_source_denied_with_request_command if {
	denies(with_sources([claims, object.union(general, {"state": "registered"}), replay])) == {"dataset/general-train@1, a general source of run claims-cpt v1, is not approved (state \"registered\"): request it with `forgegov request dataset/general-train@1 --gate dataset --as NAME`; a holder of role data-steward approves it"}
}

test_pending_source_denied_with_approve_command if {
	denies(with_sources([object.union(claims, {"state": "pending"}), general, replay])) == {"dataset/claims@1, a proprietary source of run claims-cpt v1, is not approved (state \"pending\"): its dataset request is open: a holder of role data-steward must approve it (`forgegov approve dataset/claims@1 --gate dataset --as NAME`)"}
}

test_source_without_state_denied if {
	denies(with_sources([claims, general, object.remove(replay, ["state"])])) == {"dataset/sft-general-mix@1, a replay source of run claims-cpt v1, is not approved (state nothing): request it with `forgegov request dataset/sft-general-mix@1 --gate dataset --as NAME`; a holder of role data-steward approves it"}
}

test_rejected_source_denied if {
	denies(with_sources([claims, general, object.union(replay, {"state": "rejected"})])) == {"dataset/sft-general-mix@1, a replay source of run claims-cpt v1, was rejected at the dataset gate: remove it from [[mixture.sources]], or register a fixed version, have it approved and name that"}
}

eval_msg := "dataset/heldout@1, a source of run claims-cpt v1, is an eval dataset: training on it would contaminate every evaluation that uses it; remove it from [[mixture.sources]]"

test_eval_set_in_mixture_denied if {
	heldout := source("heldout", "general", 0.2, "eval", "general-curated")
	denies(with_sources([claims, heldout, replay])) == {eval_msg}
	sft := object.union(valid_run, {"recipe": {"method": "sft"}, "sources": [claims, heldout, replay]})
	denies(sft) == {eval_msg}
}

test_kind_outside_method_denied if {
	pairs := source("pairs", "replay", 0.05, "preference", "general-curated")
	denies(with_sources([claims, general, pairs])) == {"dataset/pairs@1, a source of run claims-cpt v1, is a \"preference\" dataset, and a cpt run trains only on pretraining-text, sft-chat datasets: remove it from [[mixture.sources]] or name a dataset of one of those kinds"}
}

# Instruction and safety conversations may be replayed in continued pre-training, rendered as text.
test_chat_replay_in_cpt_allowed if {
	chat := source("sft-chat", "replay", 0.05, "sft-chat", "general-curated")
	allows(with_sources([claims, general, chat]))
}

test_sft_trains_on_chat_and_text if {
	chat := source("sft-chat", "replay", 0.3, "sft-chat", "general-curated")
	text := source("claims", "proprietary", 0.7, "pretraining-text", "proprietary")
	allows(object.union(valid_run, {"recipe": {"method": "sft"}, "sources": [text, chat]}))
	denies(object.union(valid_run, {"recipe": {"method": "sft"}, "sources": [text, chat]})) == {"dataset/sft-chat@1, a source of run claims-cpt v1, is a \"sft-chat\" dataset, and a sft run trains only on pretraining-text datasets: remove it from [[mixture.sources]] or name a dataset of one of those kinds"} with data.data.gates.run.method_dataset_kinds.sft as ["pretraining-text"]
}

test_proprietary_data_cannot_count_as_general_or_replay if {
	every role in ["general", "replay"] {
		posing := source("customer-logs", role, 0.25, "pretraining-text", "proprietary")
		sprintf(
			"dataset/customer-logs@1, a source of run claims-cpt v1, is proprietary data and cannot count as %s data: proprietary data may not be counted as general or replay data; give it role proprietary in its [[mixture.sources]] table and add a general-curated or public dataset for the %s share",
			[role, role],
		) in denies(with_sources([object.union(claims, {"share": 0.75}), posing]))
	}
}

test_general_and_public_data_may_be_proprietary_sources if {
	allows(with_sources([object.union(claims, {"classification": "public"}), general, replay]))
	allows(with_sources([object.union(claims, {"classification": "general-curated"}), general, replay]))
}

test_unknown_classification_denied if {
	denies(with_sources([claims, object.union(general, {"classification": "secret"}), replay])) == {"dataset/general-train@1, a source of run claims-cpt v1, is classified \"secret\", and a general source must be classified general-curated, public: change its role in its [[mixture.sources]] table or name a dataset of one of those classifications"}
}

test_unknown_role_denied if {
	denies(with_sources([claims, object.union(general, {"role": "synthetic"}), replay])) == {
		"dataset/general-train@1 of run claims-cpt v1 has unknown role \"synthetic\": set role in its [[mixture.sources]] table to one of general, proprietary, replay",
		# Only general and replay shares are kept data: 5 % is left.
		"the mixture of run claims-cpt v1 holds 5% general and replay data, below the 20% that continual pre-training (cpt) must keep so the base does not forget what it knew: add a general source or raise its share in [[mixture.sources]], and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
	}
}

# Every gate's settings, with the run gate's in data.json less `absent` and
# with `changes` added. Tests replace data.data.gates, the document
# lib/config.rego reads: OPA's `with` on a path below it merges an object
# into the data rather than replacing it, so it could not remove a setting.
gates_with_run(absent, changes) := object.union(
	object.remove(data.data.gates, ["run"]),
	{"run": object.union(object.remove(data.data.gates.run, absent), changes)},
)

test_kinds_and_classifications_come_from_data if {
	every absent in [{}, null, ["cpt"]] {
		denies(valid_run) == {
			"policy data sets no method_dataset_kinds for the run gate: a policy maintainer must add them to data.json",
			"policy data sets no role_classifications for the run gate: a policy maintainer must add them to data.json",
		} with data.data.gates as gates_with_run(
			["method_dataset_kinds", "role_classifications"],
			{"method_dataset_kinds": absent, "role_classifications": absent},
		)
	}
	denies(valid_run) == {
		"policy data sets no method_dataset_kinds for the run gate: a policy maintainer must add them to data.json",
		"policy data sets no role_classifications for the run gate: a policy maintainer must add them to data.json",
	} with data.data.gates as gates_with_run(["method_dataset_kinds", "role_classifications"], {})
}

test_invalid_share_denied if {
	every share in [0, -0.1, 1.5, "0.2", false] {
		denies(with_sources([claims, object.union(general, {"share": share}), replay])) == {sprintf(
			"dataset/general-train@1 of run claims-cpt v1 has share %s: set share in its [[mixture.sources]] table to a number in (0, 1]",
			[json.marshal(share)],
		)}
	}
}

test_shares_must_add_up_to_one if {
	denies(with_sources([object.union(claims, {"share": 0.5}), general, replay])) == {"the [[mixture.sources]] shares of run claims-cpt v1 add up to 0.75, not 1: adjust them so that they do and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

# --- the mixture floors of continual pre-training ------------------------------------

retained_msg(have, floor) := sprintf(
	"the mixture of run claims-cpt v1 holds %v%% general and replay data, below the %v%% that continual pre-training (cpt) must keep so the base does not forget what it knew: add a general source or raise its share in [[mixture.sources]], and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
	[have, floor],
)

replay_msg(have, floor) := sprintf(
	"run claims-cpt v1 continues pre-training of the post-training checkpoint checkpoint/ref-post@1 with %v%% replay data, below the %v%% that keeps its instruction and safety behaviour: add a replay source (role replay, instruction or safety data) or raise its share in [[mixture.sources]], and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
	[have, floor],
)

test_retained_share_at_floor_allows if {
	allows(with_sources([object.union(claims, {"share": 0.8}), object.union(general, {"share": 0.15}), replay]))
}

test_retained_share_below_floor_denied if {
	denies(with_sources([object.union(claims, {"share": 0.9}), object.union(general, {"share": 0.05}), replay])) == {retained_msg(10, 20)}
}

test_customer_only_cpt_denied if {
	denies(with_sources([object.union(claims, {"share": 1})])) == {retained_msg(0, 20), replay_msg(0, 5)}
}

# Two general sources of equal share both count: the sum is over a list.
test_equal_shares_both_count if {
	other := source("web-text", "general", 0.1, "pretraining-text", "public")
	allows(with_sources([claims, object.union(general, {"share": 0.1}), other, replay]))
}

test_replay_share_below_floor_from_post_training_denied if {
	no_replay := with_sources([claims, object.union(general, {"share": 0.25})])
	denies(no_replay) == {replay_msg(0, 5)}
	smaller := with_sources([object.union(claims, {"share": 0.76}), general, object.union(replay, {"share": 0.04})])
	denies(smaller) == {replay_msg(4, 5)}
}

test_replay_floor_only_from_post_training if {
	no_replay := with_sources([claims, object.union(general, {"share": 0.25})])
	every stage in ["pre-training", "mid-training", "candidate"] {
		allows(object.union(no_replay, {"base": {"stage": stage}}))
	}
}

test_sft_has_no_mixture_floor if {
	allows(object.union(valid_run, {"recipe": {"method": "sft"}, "sources": [object.union(claims, {"share": 1})]}))
}

test_floors_come_from_data if {
	denies(valid_run) == {retained_msg(25, 30)} with data.data.gates.run.mixture.cpt.min_retained_share as 0.3
	denies(valid_run) == {replay_msg(5, 10)} with data.data.gates.run.mixture.cpt.min_replay_share_post_training as 0.1
}

# A floor absent from data.json denies every cpt run it applies to, rather
# than letting a mixture through unchecked.
test_absent_floors_deny if {
	every mixture in [{}, {"cpt": {}}, {"cpt": {"min_retained_share": "0.2", "min_replay_share_post_training": null}}, "0.2"] {
		denies(valid_run) == {
			"policy data sets no gates.run.mixture.cpt.min_retained_share: a policy maintainer must add it to data.json (until then no cpt run passes)",
			"policy data sets no gates.run.mixture.cpt.min_replay_share_post_training: a policy maintainer must add it to data.json (until then no cpt run from a post-training base passes)",
		} with data.data.gates as gates_with_run(["mixture"], {"mixture": mixture})
	}
	without_floors := gates_with_run(["mixture"], {})
	denies(object.union(valid_run, {"base": {"stage": "mid-training"}})) == {"policy data sets no gates.run.mixture.cpt.min_retained_share: a policy maintainer must add it to data.json (until then no cpt run passes)"} with data.data.gates as without_floors
	allows(object.union(valid_run, {"recipe": {"method": "sft"}})) with data.data.gates as without_floors
}

# Every evidence rule holds on request as on approve, and none on reject.
test_evidence_rules_apply_to_request_not_reject if {
	bad := with_sources([object.union(claims, {"share": 1, "state": "pending", "dataset_kind": "eval"})])
	d := run.decision with input as with_run("request", "alice", [], bad)
	count(d.deny) == 4
	r := run.decision with input as with_run("reject", "dave", [fx.new("dave", "reject")], bad)
	r == {"allow": true, "deny": set(), "missing": set()}
}

# --- grpo: reward functions ----------------------------------------------------

prompts := source("claims-prompts", "proprietary", 1, "rl-prompts", "proprietary")

exact := {
	"ref": "exact@1", "weight": 1, "found": true, "label": "reward/exact@1", "digest": "sha256:e0",
	"state": "approved", "owner": "alice",
}

grpo_recipe := object.union(valid_recipe, {"method": "grpo", "rl": {
	"num_generations": 4, "max_completion_length": 16, "temperature": 1, "beta": 0,
	"on_reward_failure": "fail", "max_reward_failures": 0, "reward_timeout_s": 30,
}})

grpo_run(reward_list) := {"recipe": grpo_recipe, "base": valid_base, "sources": [prompts], "rewards": reward_list}

test_grpo_on_approved_rewards_and_prompts_allows if {
	allows(grpo_run([exact]))
}

test_grpo_trains_only_on_prompt_datasets if {
	denies(object.union(grpo_run([exact]), {"sources": [object.union(claims, {"share": 1})]})) == {"dataset/claims@1, a source of run claims-cpt v1, is a \"pretraining-text\" dataset, and a grpo run trains only on rl-prompts datasets: remove it from [[mixture.sources]] or name a dataset of one of those kinds"}
}

test_grpo_without_rewards_denied if {
	denies(grpo_run([])) == {"the recipe of run claims-cpt v1 optimises no reward function: add a [[rewards]] table naming an approved reward (or an [environment] naming an approved environment) and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

thermostat := {"ref": "thermostat@1", "weight": 1, "found": true, "label": "environment/thermostat@1", "digest": "sha256:f0", "state": "approved", "owner": "alice"}

with_environment(environment) := object.union(grpo_run([]), {"environment": environment})

test_grpo_with_an_approved_environment_alone_allowed if {
	allows(with_environment(thermostat))
}

test_unapproved_environment_denied if {
	denies(with_environment(object.union(thermostat, {"state": "pending"}))) == {"environment/thermostat@1, the environment of run claims-cpt v1, is not approved (state \"pending\"): its environment request is open: a holder of role reward-reviewer must approve it (`forgegov approve environment/thermostat@1 --gate environment --as NAME`)"}
	denies(with_environment(object.union(thermostat, {"state": "withdrawn"}))) == {"environment/thermostat@1, the environment of run claims-cpt v1, is not approved (state \"withdrawn\"): request it with `forgegov request environment/thermostat@1 --gate environment --as NAME`; a holder of role reward-reviewer approves it"}
}

test_rejected_environment_denied if {
	denies(with_environment(object.union(thermostat, {"state": "rejected"}))) == {"environment/thermostat@1, the environment of run claims-cpt v1, was rejected at the environment gate: register a fixed version, have it approved and name that in [environment]"}
}

test_unresolved_environment_denied if {
	missing := {"ref": "thermostat@9", "weight": 1, "found": false, "problem": "no registered environment matches 'thermostat@9'"}
	denies(with_environment(missing)) == {"environment thermostat@9 of run claims-cpt v1 cannot be used: no registered environment matches 'thermostat@9': register it (`forgegov environment register`) and ask again, or fix environment in its [environment] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

test_malformed_environment_denied if {
	denies(with_environment("thermostat")) == {"the run evidence of run claims-cpt v1 names its environment in a form the policy cannot read: report this input to the platform team"}
}

test_unapproved_reward_denied if {
	denies(grpo_run([object.union(exact, {"state": "registered"})])) == {"reward/exact@1, a reward function of run claims-cpt v1, is not approved (state \"registered\"): request it with `forgegov request reward/exact@1 --gate reward --as NAME`; a holder of role reward-reviewer approves it"}
	denies(grpo_run([object.union(exact, {"state": "withdrawn"})])) == {"reward/exact@1, a reward function of run claims-cpt v1, is not approved (state \"withdrawn\"): request it with `forgegov request reward/exact@1 --gate reward --as NAME`; a holder of role reward-reviewer approves it"}
}

test_rejected_reward_denied if {
	denies(grpo_run([object.union(exact, {"state": "rejected"})])) == {"reward/exact@1, a reward function of run claims-cpt v1, was rejected at the reward gate: remove it from [[rewards]], or register a fixed version, have it approved and name that"}
}

test_unresolved_reward_denied if {
	missing := {"ref": "exact@9", "weight": 1, "found": false, "problem": "no registered reward matches 'exact@9'"}
	denies(grpo_run([exact, missing])) == {"reward exact@9 of run claims-cpt v1 cannot be used: no registered reward matches 'exact@9': register it (`forgegov reward register`) and ask again, or fix reward in its [[rewards]] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)"}
}

# --- grpo: external reward endpoints ---------------------------------------------

chemistry := {
	"endpoint": "https://rewards.example.com/molecules", "identity": "chem-team", "version": "v3",
	"weight": 1, "digest": "sha256:e1",
}

test_an_endpoint_the_policy_does_not_list_denied if {
	denies(grpo_run([exact, chemistry])) == {"reward endpoint https://rewards.example.com/molecules run by chem-team (version v3) of run claims-cpt v1 is not one the policy allows: a policy owner must list its url and identity in rewards.endpoints (policies/data/data.json), or name approved reward code instead"}
}

test_a_listed_endpoint_allowed if {
	d := run.decision with input as approve(grpo_run([exact, chemistry]))
		with data.data.rewards.endpoints as [{"url": "https://rewards.example.com/molecules", "identity": "chem-team"}]
	d == {"allow": true, "deny": set(), "missing": set()}
}

test_a_listed_url_under_another_identity_denied if {
	d := run.decision with input as approve(grpo_run([object.union(chemistry, {"identity": "someone-else"})]))
		with data.data.rewards.endpoints as [{"url": "https://rewards.example.com/molecules", "identity": "chem-team"}]
	count(d.deny) == 1
	not d.allow
}

# Found by a review: malformed reward evidence let the rules not fire.
test_malformed_reward_evidence_denied if {
	malformed := "the run evidence of run claims-cpt v1 lists its reward functions in a form the policy cannot read: report this input to the platform team"
	malformed in denies(object.union(grpo_run([]), {"rewards": null}))
	malformed in denies(object.union(grpo_run([]), {"rewards": {"a": exact}}))
	malformed in denies(grpo_run(["reward/exact@1"]))
}

test_an_unapproved_reward_without_a_label_still_denied if {
	unlabelled := object.remove(object.union(exact, {"state": "registered"}), ["label"])
	denies(grpo_run([unlabelled])) == {"exact@1, a reward function of run claims-cpt v1, is not approved (state \"registered\"): request it with `forgegov request exact@1 --gate reward --as NAME`; a holder of role reward-reviewer approves it"}
}
