# METADATA
# title: forgegov policy data
# description: >-
#   The one place that knows where roles and gate settings live in the data
#   document. Every other package reads them through here.
package forgegov.lib.config

# Bundle data paths come from folder names, so policies/data/data.json is
# mounted at data.data (with or without -b). Reading it only here means a
# future move of the JSON file changes one package, not every gate.

# Defaults keep a bundle without data fail-closed: nobody holds a role, no
# gate has settings (the gates deny that), and no approval is fresh enough.
default roles := {}

roles := data.data.roles

default gates := {}

gates := data.data.gates

default approvals := {}

approvals := data.data.approvals

# Thresholds of the dataset gate's data-quality rules; absent ones are read as
# zero there, so a bundle without them lets no finding through.
default data_quality := {}

# Who may take each administrative act (revoke, redact), and what never may be.
default admin := {}

admin := data.data.admin

data_quality := data.data.data_quality

# What the reward gate asks of golden examples; absent ones read as the
# strictest value there (no tolerance).
default rewards := {}

rewards := data.data.rewards

# What the environment gate asks of golden episodes and turns; absent ones
# read as the strictest value there.
default environments := {}

environments := data.data.environments

default max_age_hours := 0

max_age_hours := approvals.max_age_hours

# Anything but an explicit true keeps approvals signed with a revoked key out
# of the count: trusting a compromised key must be a deliberate data change.
default count_revoked_keys := false

count_revoked_keys if approvals.count_revoked_keys == true
