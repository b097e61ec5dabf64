# METADATA
# title: forgegov run gate
# description: >-
#   Decides request, approve and reject actions on the run gate: an ML lead
#   signs off a training run before it starts, on the evidence forgegov reads
#   from the run's registered recipe: the recipe verified, its base checkpoint
#   approved for customisation, every mixture source an approved dataset of a
#   kind the method trains on, classified as its role allows, and a cpt
#   mixture that keeps enough general and replay data. Roles, stages, kinds,
#   classifications and mixture floors come from data.json.
package forgegov.gates.run

import data.forgegov.lib.approvals
import data.forgegov.lib.config
import data.forgegov.lib.gate
import data.forgegov.lib.standard_gate

inp := gate.document

settings := standard_gate.settings_of("run")

# Evidence is read when a review is asked for and when it is given; a
# rejection needs none.
evidence_actions := {"request", "approve"}

subject_name := gate.describe(object.get(inp, "subject", {}))

pct(rate) := round(rate * 10000) / 100

# --- policy data --------------------------------------------------------------

# Lists and tables from data.json, or empty ones when absent or of another
# type (count would measure a string); the rules below then say "policy data
# sets no ..." rather than judge against an empty list.
base_stages := value if {
	value := settings.base_stages
	is_array(value)
	count(value) > 0
} else := []

method_kinds := value if {
	value := settings.method_dataset_kinds
	is_object(value)
	count(value) > 0
} else := {}

role_classifications := value if {
	value := settings.role_classifications
	is_object(value)
	count(value) > 0
} else := {}

cpt_floors := object.get(settings, ["mixture", "cpt"], {})

# --- the evidence -------------------------------------------------------------

run_evidence := inp.evidence.run

recipe := run_evidence.recipe

method := recipe.method

base := run_evidence.base

sources := run_evidence.sources if is_array(run_evidence.sources)

rewards := run_evidence.rewards if is_array(run_evidence.rewards)

has_endpoint(reward) if is_string(reward.endpoint)

# Registered reward code, as opposed to external endpoints.
code_rewards := [reward | some reward in rewards; not has_endpoint(reward)]

# A field of an evidence object for a message, or the fallback when the
# object or the field is absent or of another type: a message that cannot be
# built would drop its deny.
field(value, key, fallback) := object.get(value, key, fallback) if {
	is_object(value)
} else := fallback

# Assets are named as the registry labels them once found, by the recipe's
# reference otherwise.
base_name := sprintf("%v", [base.label]) if {
	base.found == true
} else := sprintf("base checkpoint %v", [field(object.get(run_evidence, "base", null), "ref", "(none)")])

source_name(src) := sprintf("%v", [src.label]) if {
	src.found == true
} else := sprintf("source %v", [field(src, "ref", "(no dataset named)")])

# Predicates over whole documents (or one source), as in lib/gate.rego: `not
# f(x.field)` with the field absent fails the rule body instead of denying.
has_run_evidence(doc) if is_object(doc.evidence.run)

recipe_given(doc) if is_object(doc.evidence.run.recipe)

recipe_valid(doc) if doc.evidence.run.recipe.valid == true

base_found(doc) if doc.evidence.run.base.found == true

base_approved(doc) if doc.evidence.run.base.state == "approved"

base_rejected(doc) if doc.evidence.run.base.state == "rejected"

base_stage_allowed(doc) if doc.evidence.run.base.stage in base_stages

has_sources(doc) if {
	is_array(doc.evidence.run.sources)
	count(doc.evidence.run.sources) > 0
}

method_known(doc) if is_array(method_kinds[doc.evidence.run.recipe.method])

found(src) if src.found == true

approved(src) if src.state == "approved"

rejected(src) if src.state == "rejected"

role_known(src) if is_array(role_classifications[src.role])

kind_fits(src, m) if src.dataset_kind in method_kinds[m]

classification_fits(src) if src.classification in role_classifications[src.role]

share_valid(src) if {
	is_number(src.share)
	src.share > 0
	src.share <= 1
}

# The rules on the recipe's contents judge a recipe forgegov could verify;
# an unverified one denies once, with its problem.
judged if {
	inp.action in evidence_actions
	recipe_valid(inp)
}

# How to get an asset approved, by the state the registry reports. Roles are
# named from the gate's quorum in data.json.
approvers(gate_name) := sprintf("a holder of %s", [approvals.role_phrase(object.keys(quorum))]) if {
	quorum := standard_gate.settings_of(gate_name).quorum
	is_object(quorum)
	count(quorum) > 0
} else := sprintf("an approver of the %s gate", [gate_name])

next_step(gate_name, label, "pending") := sprintf(
	"its %s request is open: %s must approve it (`forgegov approve %s --gate %s --as NAME`)",
	[gate_name, approvers(gate_name), label, gate_name],
)

next_step(gate_name, label, state) := sprintf(
	"request it with `forgegov request %s --gate %s --as NAME`; %s approves it",
	[label, gate_name, approvers(gate_name)],
) if {
	not state in {"pending", "rejected"}
}

# --- deny ---------------------------------------------------------------------

# deny and missing are partial sets so that rules on this gate's own evidence
# add to them beside the standard ones. gate.document rather than input keeps
# the envelope checks firing when no input was sent at all.
deny contains msg if some msg in standard_gate.deny(inp, "run", settings)

deny contains msg if {
	inp.action in evidence_actions
	not has_run_evidence(inp)
	msg := sprintf(
		"%s has no run evidence (input.evidence.run): submit the action again through forgegov, which reads the run's registered recipe, its base checkpoint and its sources",
		[subject_name],
	)
}

recipe_problem := recipe.problem if {
	is_string(recipe.problem)
} else := "the evidence holds no recipe" if {
	not recipe_given(inp)
} else := sprintf("recipe.valid is %s, not true, and no problem is named", [gate.shown(recipe, "valid")])

deny contains msg if {
	inp.action in evidence_actions
	has_run_evidence(inp)
	not recipe_valid(inp)
	msg := sprintf(
		"the recipe of %s could not be verified: %s: restore the registered recipe file, or fix the recipe and start it as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name, recipe_problem],
	)
}

# The base checkpoint: registered, approved for customisation, at a stage runs
# may start from.
deny contains msg if {
	judged
	not base_found(inp)
	msg := sprintf(
		"the base checkpoint %v of %s cannot be used: %v: register it (`forgegov checkpoint register`) and ask again, or set checkpoint in the recipe's [base] table to a registered checkpoint and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[
			field(object.get(run_evidence, "base", null), "ref", "(none)"), subject_name,
			field(object.get(run_evidence, "base", null), "problem", "the evidence names no base checkpoint"),
		],
	)
}

deny contains msg if {
	judged
	base_found(inp)
	base_rejected(inp)
	msg := sprintf(
		"%s, the base of %s, was rejected for customisation: set checkpoint in the recipe's [base] table to an approved checkpoint and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[base_name, subject_name],
	)
}

deny contains msg if {
	judged
	base_found(inp)
	not base_approved(inp)
	not base_rejected(inp)
	msg := sprintf(
		"%s, the base of %s, is not approved for customisation (state %s): %s",
		[base_name, subject_name, gate.shown(base, "state"), next_step("base", base_name, field(base, "state", null))],
	)
}

deny contains msg if {
	judged
	base_found(inp)
	count(base_stages) > 0
	not base_stage_allowed(inp)
	msg := sprintf(
		"%s, the base of %s, is at stage %s; training runs start only from checkpoints at one of the stages %s: set checkpoint in the recipe's [base] table to such a checkpoint",
		[base_name, subject_name, gate.shown(base, "stage"), concat(", ", base_stages)],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	count(base_stages) == 0
	msg := "policy data sets no base_stages for the run gate: a policy maintainer must add them to data.json"
}

# The recipe's method and the mixture's sources.
deny contains msg if {
	judged
	count(method_kinds) > 0
	not method_known(inp)
	msg := sprintf(
		"the recipe of %s has unknown method %s: set method to one of %s and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name, gate.shown(recipe, "method"), concat(", ", sort(object.keys(method_kinds)))],
	)
}

deny contains msg if {
	inp.action in evidence_actions
	count(method_kinds) == 0
	msg := "policy data sets no method_dataset_kinds for the run gate: a policy maintainer must add them to data.json"
}

deny contains msg if {
	inp.action in evidence_actions
	count(role_classifications) == 0
	msg := "policy data sets no role_classifications for the run gate: a policy maintainer must add them to data.json"
}

deny contains msg if {
	judged
	not has_sources(inp)
	msg := sprintf(
		"the recipe of %s trains on no sources: add [[mixture.sources]] tables naming approved datasets and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name],
	)
}

deny contains msg if {
	judged
	some src in sources
	not found(src)
	msg := sprintf(
		"%s (role %v) of %s cannot be used: %v: register it (`forgegov dataset register`) and ask again, or fix dataset in its [[mixture.sources]] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[source_name(src), field(src, "role", "none"), subject_name, field(src, "problem", "the evidence says it was not found")],
	)
}

deny contains msg if {
	judged
	some src in sources
	found(src)
	rejected(src)
	msg := sprintf(
		"%s, a %v source of %s, was rejected at the dataset gate: remove it from [[mixture.sources]], or register a fixed version, have it approved and name that",
		[source_name(src), field(src, "role", "none"), subject_name],
	)
}

deny contains msg if {
	judged
	some src in sources
	found(src)
	not approved(src)
	not rejected(src)
	msg := sprintf(
		"%s, a %v source of %s, is not approved (state %s): %s",
		[
			source_name(src), field(src, "role", "none"), subject_name, gate.shown(src, "state"),
			next_step("dataset", source_name(src), field(src, "state", null)),
		],
	)
}

# An eval set in a training mixture is the case this rule exists for: a model
# trained on it scores well on exactly that evaluation and nothing is learnt.
kind_problem(src) := "is an eval dataset: training on it would contaminate every evaluation that uses it; remove it from [[mixture.sources]]" if {
	src.dataset_kind == "eval"
} else := sprintf(
	"is a %s dataset, and a %v run trains only on %s datasets: remove it from [[mixture.sources]] or name a dataset of one of those kinds",
	[gate.shown(src, "dataset_kind"), method, concat(", ", method_kinds[method])],
)

deny contains msg if {
	judged
	method_known(inp)
	some src in sources
	found(src)
	not kind_fits(src, method)
	msg := sprintf("%s, a source of %s, %s", [source_name(src), subject_name, kind_problem(src)])
}

deny contains msg if {
	judged
	count(role_classifications) > 0
	some src in sources
	not role_known(src)
	msg := sprintf(
		"%s of %s has unknown role %s: set role in its [[mixture.sources]] table to one of %s",
		[source_name(src), subject_name, gate.shown(src, "role"), concat(", ", sort(object.keys(role_classifications)))],
	)
}

# Proprietary data counted as general or replay data would meet the mixture
# floors below on paper while the model sees only the organisation's data.
classification_problem(src) := sprintf(
	"is proprietary data and cannot count as %v data: proprietary data may not be counted as general or replay data; give it role proprietary in its [[mixture.sources]] table and add a general-curated or public dataset for the %v share",
	[src.role, src.role],
) if {
	src.classification == "proprietary"
} else := sprintf(
	"is classified %s, and a %v source must be classified %s: change its role in its [[mixture.sources]] table or name a dataset of one of those classifications",
	[gate.shown(src, "classification"), src.role, concat(", ", role_classifications[src.role])],
)

deny contains msg if {
	judged
	some src in sources
	found(src)
	role_known(src)
	not classification_fits(src)
	msg := sprintf("%s, a source of %s, %s", [source_name(src), subject_name, classification_problem(src)])
}

deny contains msg if {
	judged
	some src in sources
	not share_valid(src)
	msg := sprintf(
		"%s of %s has share %s: set share in its [[mixture.sources]] table to a number in (0, 1]",
		[source_name(src), subject_name, gate.shown(src, "share")],
	)
}

# --- mixture floors for continual pre-training ----------------------------------
#
# Continued pre-training on the organisation's data alone makes a model forget
# what it knew: a published run of customer-only CPT dropped MMLU from 0.75 to
# 0.47, while a 75/25 mix of customer and general data kept 0.74. Ibrahim et
# al. (2024, "Simple and Scalable Strategies to Continually Pre-train Large
# Language Models") found 5 % replay of pre-training data enough under a weak
# distribution shift and 25 % under a strong one. Hence a floor on the
# general + replay share, and, from a post-trained base whose instruction and
# safety behaviour would otherwise fade, a floor on the replay share.
#
# Shares are summed here from the sources (arrays, not sets, so that two
# sources with equal shares both count) and divided by their total, never
# read from a precomputed figure. They are judged only when every share is a
# number in (0, 1]; otherwise the share rule above denies. A floor absent
# from data.json denies with "policy data sets no ...": no cpt run passes
# until a maintainer sets it.

shares_valid if {
	count(sources) > 0
	every src in sources {
		share_valid(src)
	}
}

total_share := sum([src.share | some src in sources])

share_of(roles) := sum([src.share | some src in sources; src.role in roles]) / total_share

retained_share := share_of({"general", "replay"})

replay_share := share_of({"replay"})

# The recipe refuses shares that do not add up to 1 (within the same
# tolerance); evidence that says otherwise was not made from a valid recipe.
share_tolerance := 0.000001

deny contains msg if {
	judged
	shares_valid
	abs(total_share - 1) > share_tolerance
	msg := sprintf(
		"the [[mixture.sources]] shares of %s add up to %v, not 1: adjust them so that they do and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name, total_share],
	)
}

min_share(key) := value if {
	value := cpt_floors[key]
	is_number(value)
}

min_share_set(key) if min_share(key)

deny contains msg if {
	judged
	method == "cpt"
	shares_valid
	retained_share < min_share("min_retained_share")
	msg := sprintf(
		"the mixture of %s holds %v%% general and replay data, below the %v%% that continual pre-training (cpt) must keep so the base does not forget what it knew: add a general source or raise its share in [[mixture.sources]], and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name, pct(retained_share), pct(min_share("min_retained_share"))],
	)
}

deny contains msg if {
	judged
	method == "cpt"
	base.stage == "post-training"
	shares_valid
	replay_share < min_share("min_replay_share_post_training")
	msg := sprintf(
		"%s continues pre-training of the post-training checkpoint %s with %v%% replay data, below the %v%% that keeps its instruction and safety behaviour: add a replay source (role replay, instruction or safety data) or raise its share in [[mixture.sources]], and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name, base_name, pct(replay_share), pct(min_share("min_replay_share_post_training"))],
	)
}

deny contains msg if {
	judged
	method == "cpt"
	not min_share_set("min_retained_share")
	msg := "policy data sets no gates.run.mixture.cpt.min_retained_share: a policy maintainer must add it to data.json (until then no cpt run passes)"
}

deny contains msg if {
	judged
	method == "cpt"
	base.stage == "post-training"
	not min_share_set("min_replay_share_post_training")
	msg := "policy data sets no gates.run.mixture.cpt.min_replay_share_post_training: a policy maintainer must add it to data.json (until then no cpt run from a post-training base passes)"
}

missing contains msg if some msg in standard_gate.missing(inp, settings.quorum)

default allow := false

allow if {
	count(deny) == 0
	count(missing) == 0
}

# Never reached while allow has its default; it keeps the answer well-formed
# (and denying) should a later edit leave decision undefined.
default decision := {
	"allow": false,
	"deny": ["the run gate policy reached no decision: report this input to the policy maintainers"],
	"missing": [],
}

# METADATA
# title: Run gate decision
# description: >-
#   The answer forgegov asks OPA for: allow is true only when deny and
#   missing are both empty.
# entrypoint: true
decision := {"allow": allow, "deny": deny, "missing": missing}

# --- reward functions (grpo) --------------------------------------------------

# A grpo run optimises only reward functions approved at the reward gate,
# whose approval rests on their golden examples re-run in the sandbox; the run
# is held to the digests resolved here, and loads them re-verified.
deny contains msg if {
	judged
	rewards_malformed
	msg := sprintf(
		"the run evidence of %s lists its reward functions in a form the policy cannot read: report this input to the platform team",
		[subject_name],
	)
}

rewards_malformed if {
	"rewards" in object.keys(run_evidence)
	not is_array(run_evidence.rewards)
}

rewards_malformed if {
	some reward in rewards
	not is_object(reward)
}

deny contains msg if {
	judged
	method == "grpo"
	not rewards_malformed
	count(object.get(run_evidence, "rewards", [])) == 0
	not "environment" in object.keys(run_evidence)
	msg := sprintf(
		"the recipe of %s optimises no reward function: add a [[rewards]] table naming an approved reward (or an [environment] naming an approved environment) and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[subject_name],
	)
}

deny contains msg if {
	judged
	some reward in code_rewards
	not found(reward)
	msg := sprintf(
		"reward %v of %s cannot be used: %v: register it (`forgegov reward register`) and ask again, or fix reward in its [[rewards]] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[field(reward, "ref", "(none named)"), subject_name, field(reward, "problem", "the evidence says it was not found")],
	)
}

deny contains msg if {
	judged
	some reward in code_rewards
	found(reward)
	rejected(reward)
	msg := sprintf(
		"%v, a reward function of %s, was rejected at the reward gate: remove it from [[rewards]], or register a fixed version, have it approved and name that",
		[field(reward, "label", field(reward, "ref", "a reward")), subject_name],
	)
}

deny contains msg if {
	judged
	some reward in code_rewards
	found(reward)
	not approved(reward)
	not rejected(reward)
	msg := sprintf(
		"%v, a reward function of %s, is not approved (state %s): %s",
		[
			field(reward, "label", field(reward, "ref", "a reward")), subject_name, gate.shown(reward, "state"),
			next_step("reward", field(reward, "label", field(reward, "ref", "a reward")), field(reward, "state", null)),
		],
	)
}

# --- the environment (grpo) ----------------------------------------------------

# A grpo run's model acts only in an environment approved at the environment
# gate, whose approval rests on its golden episodes replayed in the sandbox.
environment := run_evidence.environment

deny contains msg if {
	judged
	"environment" in object.keys(run_evidence)
	not is_object(environment)
	msg := sprintf(
		"the run evidence of %s names its environment in a form the policy cannot read: report this input to the platform team",
		[subject_name],
	)
}

deny contains msg if {
	judged
	is_object(environment)
	not found(environment)
	msg := sprintf(
		"environment %v of %s cannot be used: %v: register it (`forgegov environment register`) and ask again, or fix environment in its [environment] table and start the edited recipe as a new run spec (`forgegov run start RECIPE.toml --as NAME`)",
		[field(environment, "ref", "(none named)"), subject_name, field(environment, "problem", "the evidence says it was not found")],
	)
}

deny contains msg if {
	judged
	is_object(environment)
	found(environment)
	rejected(environment)
	msg := sprintf(
		"%v, the environment of %s, was rejected at the environment gate: register a fixed version, have it approved and name that in [environment]",
		[field(environment, "label", field(environment, "ref", "an environment")), subject_name],
	)
}

deny contains msg if {
	judged
	is_object(environment)
	found(environment)
	not approved(environment)
	not rejected(environment)
	name := field(environment, "label", field(environment, "ref", "an environment"))
	msg := sprintf(
		"%v, the environment of %s, is not approved (state %s): %s",
		[name, subject_name, gate.shown(environment, "state"), next_step("environment", name, field(environment, "state", null))],
	)
}

# External reward endpoints run outside forgegov, so no golden example can be
# re-run against their code: a run may use one only when policy data lists its
# URL and the identity that runs it (rewards.endpoints). Shipped: none.
allowed_endpoint(reward) if {
	some listed in object.get(config.rewards, "endpoints", [])
	listed.url == reward.endpoint
	listed.identity == reward.identity
}

deny contains msg if {
	judged
	some reward in rewards
	has_endpoint(reward)
	not allowed_endpoint(reward)
	msg := sprintf(
		"reward endpoint %s run by %v (version %v) of %s is not one the policy allows: a policy owner must list its url and identity in rewards.endpoints (policies/data/data.json), or name approved reward code instead",
		[reward.endpoint, field(reward, "identity", "nobody"), field(reward, "version", "none"), subject_name],
	)
}
