# Unit tests for the default mint policy. They run against the shipped
# data.json unless a test overrides data.frostmint.config with `with`.
# Run them with policy.RunTests (go test ./policy/ does).
package frostmint.mint_test

import data.frostmint.mint

dev_cli := "spiffe://dev.frostmint.local/dev/cli"

payments_ci := "spiffe://dev.frostmint.local/team/payments/ci"

deployer := "spiffe://dev.frostmint.local/ci/deployer"

req(subject, audience, scopes) := {
	"caller": {"subject": subject, "client_id": "test", "kind": "x509-svid"},
	"request": {"audience": audience, "scopes": scopes, "ttl_seconds": 0},
	"time": "2026-01-02T03:04:05Z",
	"time_unix": 1767323045,
	"signer_id": 0,
}

with_ttl(r, ttl) := object.union(r, {"request": object.union(r.request, {"ttl_seconds": ttl})})

# --- the demo path -----------------------------------------------------------

test_dev_cli_may_mint_read_write if {
	d := mint.decision with input as req(dev_cli, "https://api.example.com", ["read", "write"])
	d.allow == true
	d.reasons == []
	d.max_ttl_seconds == 900
	d.requires_approval == false
}

test_dev_cli_may_not_mint_admin if {
	d := mint.decision with input as req(dev_cli, "https://api.example.com", ["admin:keys"])
	d.allow == false
	"caller spiffe://dev.frostmint.local/dev/cli may not request scope \"admin:keys\"" in d.reasons
}

# --- caller identity ---------------------------------------------------------

test_untrusted_trust_domain_denied if {
	d := mint.decision with input as req("spiffe://evil.example/dev/cli", "https://api.example.com", ["read"])
	d.allow == false
	"trust domain \"evil.example\" is not trusted" in d.reasons
}

test_non_spiffe_subject_denied if {
	every subject in [
		"",
		"https://dev.frostmint.local/dev/cli",
		"spiffe://dev.frostmint.local",
		"spiffe://dev.frostmint.local/",
		"spiffe://dev.frostmint.local/dev//cli",
		"spiffe://dev.frostmint.local/dev/../cli",
		"spiffe://dev.frostmint.local/./cli",
		"spiffe://DEV.frostmint.local/dev/cli",
		"spiffe://dev.frostmint.local/dev/cli?x=1",
	] {
		d := mint.decision with input as req(subject, "https://api.example.com", ["read"])
		d.allow == false
		"caller subject must be a SPIFFE ID (spiffe://<trust-domain>/<path>)" in d.reasons
	}
}

test_non_string_subject_denied if {
	d := mint.decision with input as req(42, "https://api.example.com", ["read"])
	d.allow == false
}

test_missing_config_denies_everything if {
	d := mint.decision with input as req(dev_cli, "https://api.example.com", ["read"])
		with data.frostmint.config as {}
	d.allow == false
	"trust domain \"dev.frostmint.local\" is not trusted" in d.reasons
}

test_other_trust_domain_when_configured if {
	d := mint.decision with input as req("spiffe://prod.example/team/payments/api", "aud", ["payments:refund"])
		with data.frostmint.config.trust_domains as ["prod.example"]
	d.allow == true
}

# --- request shape -----------------------------------------------------------

test_empty_audience_denied if {
	every audience in ["", "   ", 7, null] {
		d := mint.decision with input as req(dev_cli, audience, ["read"])
		d.allow == false
		"audience must be a non-empty string" in d.reasons
	}
}

test_no_scopes_denied if {
	d := mint.decision with input as req(dev_cli, "aud", [])
	d.allow == false
	"at least one scope is required" in d.reasons
}

test_scopes_not_array_denied if {
	d := mint.decision with input as req(dev_cli, "aud", "read")
	d.allow == false
	"scopes must be an array of strings" in d.reasons
}

test_malformed_scopes_denied if {
	too_long := concat("", [x | some _ in numbers.range(1, 65); x := "b"])
	count(too_long) == 65
	every scope in ["Read", "-read", "re ad", "", too_long, 3, null] {
		d := mint.decision with input as req(dev_cli, "aud", ["read", scope])
		d.allow == false
		sprintf("scope %v is malformed (want ^[a-z0-9][a-z0-9:._/-]{0,63}$)", [scope]) in d.reasons
	}
}

test_longest_scope_is_well_formed if {
	long := concat("", ["payments:", concat("", [x | some _ in numbers.range(1, 55); x := "z"])])
	count(long) == 64
	d := mint.decision with input as req(payments_ci, "aud", [long])
	d.allow == true
}

test_too_many_scopes_denied if {
	scopes := [sprintf("payments:s%d", [i]) | some i in numbers.range(1, 17)]
	d := mint.decision with input as req(payments_ci, "aud", scopes)
	d.allow == false
	"too many scopes: 17 requested, at most 16 allowed" in d.reasons
}

test_sixteen_scopes_allowed if {
	scopes := [sprintf("payments:s%d", [i]) | some i in numbers.range(1, 16)]
	d := mint.decision with input as req(payments_ci, "aud", scopes)
	d.allow == true
}

test_negative_ttl_denied if {
	d := mint.decision with input as with_ttl(req(dev_cli, "aud", ["read"]), -1)
	d.allow == false
	"ttl_seconds must be a non-negative number" in d.reasons
}

# --- team rule ---------------------------------------------------------------

test_team_may_mint_own_and_generic_scopes if {
	d := mint.decision with input as req(payments_ci, "aud", ["payments:refund", "payments:charge/read", "read", "write"])
	d.allow == true
}

test_team_may_not_mint_other_team_scopes if {
	d := mint.decision with input as req(payments_ci, "aud", ["billing:refund"])
	d.allow == false
	"caller spiffe://dev.frostmint.local/team/payments/ci may not request scope \"billing:refund\"" in d.reasons
}

test_team_prefix_alone_is_not_a_scope if {
	d := mint.decision with input as req(payments_ci, "aud", ["payments:"])
	d.allow == false
}

test_team_needs_a_workload_segment if {
	d := mint.decision with input as req("spiffe://dev.frostmint.local/team/payments", "aud", ["payments:refund"])
	d.allow == false
}

test_team_rule_only_under_team_tree if {
	d := mint.decision with input as req("spiffe://dev.frostmint.local/other/payments/ci", "aud", ["payments:refund"])
	d.allow == false
}

test_team_may_not_mint_admin if {
	d := mint.decision with input as req(payments_ci, "aud", ["admin:keys"])
	d.allow == false
}

# --- grants ------------------------------------------------------------------

test_prefix_grant if {
	d := mint.decision with input as req(deployer, "aud", ["deploy:staging", "read"])
	d.allow == true
	d.requires_approval == false
}

test_exact_grant_is_not_a_prefix if {
	d := mint.decision with input as req(dev_cli, "aud", ["readwrite"])
	d.allow == false
}

test_grant_is_per_subject if {
	d := mint.decision with input as req(deployer, "aud", ["write"])
	d.allow == false
}

# --- TTL -----------------------------------------------------------------------

test_admin_scope_lowers_max_ttl if {
	d := mint.decision with input as req(dev_cli, "aud", ["read", "admin:keys"])
		with data.frostmint.config.grants as {dev_cli: ["read", "admin:*"]}
	d.allow == true
	d.max_ttl_seconds == 300
}

test_fallbacks_when_data_is_minimal if {
	d := mint.decision with input as req(dev_cli, "aud", ["admin:keys", "deploy:prod"])
		with data.frostmint.config as {
			"trust_domains": ["dev.frostmint.local"],
			"grants": {dev_cli: ["admin:*", "deploy:*"]},
		}
	d.allow == true
	d.max_ttl_seconds == 300
	d.requires_approval == true
}

test_max_ttl_is_min_over_scopes if {
	d := mint.decision with input as req(dev_cli, "aud", ["read", "slow:x", "fast:x"])
		with data.frostmint.config.grants as {dev_cli: ["read", "slow:*", "fast:*"]}
		with data.frostmint.config.scope_ttl_limits as [
			{"prefix": "slow:", "max_ttl_seconds": 600},
			{"prefix": "fast:", "max_ttl_seconds": 60},
		]
	d.max_ttl_seconds == 60
}

test_ttl_above_limit_is_noted_not_denied if {
	d := mint.decision with input as with_ttl(req(dev_cli, "aud", ["read"]), 3600)
	d.allow == true
	d.max_ttl_seconds == 900
	d.reasons == ["requested ttl 3600s exceeds the policy maximum 900s and will be capped"]
}

# --- approval ----------------------------------------------------------------

test_deploy_prod_requires_approval if {
	d := mint.decision with input as req(deployer, "aud", ["deploy:prod/payments"])
	d.allow == true
	d.requires_approval == true
	"scope \"deploy:prod/payments\" requires approval" in d.reasons
}

test_denied_decision_is_well_formed if {
	d := mint.decision with input as {}
	d.allow == false
	count(d.reasons) > 0
	is_number(d.max_ttl_seconds)
	is_boolean(d.requires_approval)
}
