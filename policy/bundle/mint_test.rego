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

# An OIDC caller: the subject is "<issuer>:<sub claim>", as the authenticator
# builds it.
oidc_req(issuer, claims, scopes) := {
	"caller": {
		"subject": concat(":", [issuer, object.get(claims, "sub", "")]),
		"client_id": "test",
		"kind": "oidc",
		"issuer": issuer,
		"claims": claims,
	},
	"request": {"audience": "https://api.example.com", "scopes": scopes, "ttl_seconds": 0},
	"time": "2026-01-02T03:04:05Z",
	"time_unix": 1767323045,
	"signer_id": 0,
}

# Claims of a GitHub Actions ID token for a push to main of frostmint/demo.
gh_claims := {
	"sub": "repo:frostmint/demo:ref:refs/heads/main",
	"repository": "frostmint/demo",
	"repository_owner": "frostmint",
	"ref": "refs/heads/main",
	"workflow": "deploy",
	"event_name": "push",
	"job_workflow_ref": "frostmint/demo/.github/workflows/deploy.yml@refs/heads/main",
}

gh(patch, scopes) := oidc_req("github", object.union(gh_claims, patch), scopes)

# Claims of a Kubernetes service account token for payments/api.
k8s_claims(namespace, name) := {
	"sub": sprintf("system:serviceaccount:%s:%s", [namespace, name]),
	"kubernetes.io": {
		"namespace": namespace,
		"serviceaccount": {"name": name, "uid": "8f7c3a52-0d1e-4e8f-9a1b-2c3d4e5f6a7b"},
	},
}

k8s(namespace, name, scopes) := oidc_req("k8s", k8s_claims(namespace, name), scopes)

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

test_ttl_seconds_by_prefix if {
	d := mint.decision with input as req(deployer, "aud", ["read", "deploy:staging"])
	d.allow == true
	d.max_ttl_seconds == 600
}

test_ttl_seconds_configurable if {
	d := mint.decision with input as req(deployer, "aud", ["read", "deploy:staging"])
		with data.frostmint.config.ttl_seconds as {"deploy:": 120, "deploy:staging": 60, "read": 600}
		with data.frostmint.config.default_max_ttl_seconds as 800
	d.allow == true
	d.max_ttl_seconds == 60

	d2 := mint.decision with input as req(dev_cli, "aud", ["write"])
		with data.frostmint.config.ttl_seconds as {"deploy:": 120}
		with data.frostmint.config.default_max_ttl_seconds as 800
	d2.max_ttl_seconds == 800
}

test_empty_ttl_seconds_has_no_admin_fallback if {
	d := mint.decision with input as req(dev_cli, "aud", ["admin:keys"])
		with data.frostmint.config as {
			"trust_domains": ["dev.frostmint.local"],
			"grants": {dev_cli: ["admin:*"]},
			"ttl_seconds": {},
		}
	d.allow == true
	d.max_ttl_seconds == 900
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

# --- caller kinds ---------------------------------------------------------------

test_unknown_kind_denied if {
	every kind in ["", "x509", "OIDC", "jwt-svid", 1, null] {
		r := req(dev_cli, "https://api.example.com", ["read"])
		d := mint.decision with input as object.union(r, {"caller": object.union(r.caller, {"kind": kind})})
		d.allow == false
		sprintf("caller kind %s is not supported", [json.marshal(kind)]) in d.reasons
	}
}

test_missing_kind_denied if {
	r := req(dev_cli, "https://api.example.com", ["read"])
	d := mint.decision with input as object.union(object.remove(r, ["caller"]), {"caller": object.remove(r.caller, ["kind"])})
	d.allow == false
	"caller kind \"\" is not supported" in d.reasons
}

test_unknown_issuer_denied if {
	every issuer in ["", "gitlab", "GitHub", "kubernetes"] {
		d := mint.decision with input as oidc_req(issuer, gh_claims, ["read"])
		d.allow == false
		sprintf("OIDC issuer %s is not supported", [json.marshal(issuer)]) in d.reasons
	}
}

test_missing_issuer_denied if {
	r := gh({}, ["read"])
	d := mint.decision with input as object.union(object.remove(r, ["caller"]), {"caller": object.remove(r.caller, ["issuer"])})
	d.allow == false
	"OIDC issuer \"\" is not supported" in d.reasons
}

test_oidc_caller_is_not_a_spiffe_caller if {
	# An OIDC caller claiming a granted SPIFFE ID as subject gets nothing
	# from the SPIFFE grants.
	r := gh({}, ["write"])
	d := mint.decision with input as object.union(r, {"caller": object.union(r.caller, {"subject": dev_cli})})
	d.allow == false
}

test_certificate_caller_ignores_oidc_config if {
	# A SPIFFE caller does not get the GitHub or Kubernetes grants.
	d := mint.decision with input as req("spiffe://dev.frostmint.local/frostmint/demo", "aud", ["read"])
	d.allow == false
	"caller spiffe://dev.frostmint.local/frostmint/demo may not request scope \"read\"" in d.reasons
}

test_oidc_subject_must_match_sub_claim if {
	r := gh({}, ["read"])
	every subject in [
		"github:repo:frostmint/other:ref:refs/heads/main",
		"repo:frostmint/demo:ref:refs/heads/main",
		"k8s:repo:frostmint/demo:ref:refs/heads/main",
		"",
		7,
	] {
		d := mint.decision with input as object.union(r, {"caller": object.union(r.caller, {"subject": subject})})
		d.allow == false
		"caller subject must be \"github:\" followed by the token's sub claim" in d.reasons
	}
}

test_oidc_without_sub_claim_denied if {
	d := mint.decision with input as oidc_req("github", object.remove(gh_claims, ["sub"]), ["read"])
	input_subject := oidc_req("github", object.remove(gh_claims, ["sub"]), ["read"]).caller.subject
	input_subject == "github:"
	d.allow == false
	"caller subject must be \"github:\" followed by the token's sub claim" in d.reasons
}

test_oidc_subject_claim_configurable if {
	r := oidc_req("github", gh_claims, ["read"])
	subject := "github:frostmint/demo/.github/workflows/deploy.yml@refs/heads/main"
	named := object.union(r, {"caller": {"subject": subject}})

	d1 := mint.decision with input as named
	d1.allow == false
	"caller subject must be \"github:\" followed by the token's sub claim" in d1.reasons

	d2 := mint.decision with input as named
		with data.frostmint.config.oidc_subject_claims as {"github": "job_workflow_ref"}
	d2.allow == true

	d3 := mint.decision with input as r
		with data.frostmint.config.oidc_subject_claims as {"github": "job_workflow_ref"}
	d3.allow == false
	"caller subject must be \"github:\" followed by the token's job_workflow_ref claim" in d3.reasons

	d4 := mint.decision with input as r
		with data.frostmint.config.oidc_subject_claims as {"k8s": "email"}
	d4.allow == true
}

# --- GitHub Actions --------------------------------------------------------------

test_github_demo_may_mint if {
	d := mint.decision with input as gh({}, ["read", "deploy:staging"])
	d.allow == true
	d.reasons == []
	d.max_ttl_seconds == 600
	d.requires_approval == false
}

test_github_demo_read_only if {
	d := mint.decision with input as gh({}, ["read"])
	d.allow == true
	d.max_ttl_seconds == 900
}

test_github_unknown_repository_denied if {
	d := mint.decision with input as gh({"repository": "octo/app", "sub": "repo:octo/app:ref:refs/heads/main"}, ["read"])
	d.allow == false
	d.reasons == ["repository octo/app is not allowed"]
}

test_github_repository_is_exact if {
	every repository in ["frostmint/demo2", "frostmint/Demo", "frostmint", "demo"] {
		d := mint.decision with input as gh({"repository": repository}, ["read"])
		d.allow == false
		sprintf("repository %s is not allowed", [repository]) in d.reasons
	}
}

test_github_ref_not_allowed if {
	d := mint.decision with input as gh({"ref": "refs/heads/feature", "sub": "repo:frostmint/demo:ref:refs/heads/feature"}, ["read"])
	d.allow == false
	d.reasons == ["ref refs/heads/feature is not allowed for frostmint/demo"]
}

test_github_pull_request_ref_not_allowed if {
	d := mint.decision with input as gh({"ref": "refs/pull/7/merge", "event_name": "pull_request", "sub": "repo:frostmint/demo:pull_request"}, ["read"])
	d.allow == false
	"ref refs/pull/7/merge is not allowed for frostmint/demo" in d.reasons
}

test_github_missing_claims_denied if {
	every name in ["repository", "ref"] {
		every value in [null, "", 1, ["refs/heads/main"]] {
			d := mint.decision with input as gh({name: value}, ["read"])
			d.allow == false
			sprintf("GitHub token lacks the %q claim", [name]) in d.reasons
		}
		d := mint.decision with input as oidc_req("github", object.remove(gh_claims, [name]), ["read"])
		d.allow == false
		sprintf("GitHub token lacks the %q claim", [name]) in d.reasons
	}
}

test_github_no_claims_denied if {
	r := gh({}, ["read"])
	d := mint.decision with input as object.union(object.remove(r, ["caller"]), {"caller": object.remove(r.caller, ["claims"])})
	d.allow == false
	"GitHub token lacks the \"repository\" claim" in d.reasons
}

test_github_scope_not_allowed if {
	every scope in ["write", "deploy:prod", "deploy:staging2", "admin:keys"] {
		d := mint.decision with input as gh({}, ["read", scope])
		d.allow == false
		d.reasons == [sprintf("caller github:repo:frostmint/demo:ref:refs/heads/main may not request scope %q", [scope])]
	}
}

github_site := {
	"octo/app": {
		"branches": ["refs/heads/main", "refs/tags/v*"],
		"environments": ["production", "staging-*"],
		"scopes": ["read", "deploy:*"],
	},
	"octo/any": {"branches": ["*"], "scopes": ["read"]},
	"octo/none": {"branches": [], "scopes": ["read"]},
	"octo/noenv": {"branches": ["*"], "environments": [], "scopes": ["read"]},
}

octo(patch, scopes) := gh(
	object.union(
		{"repository": "octo/app", "repository_owner": "octo", "sub": "repo:octo/app:environment:production", "environment": "production"},
		patch,
	),
	scopes,
)

test_github_branch_patterns if {
	every ref in ["refs/heads/main", "refs/tags/v1", "refs/tags/v1.2.3"] {
		d := mint.decision with input as octo({"ref": ref}, ["read"])
			with data.frostmint.config.github.repositories as github_site
		d.allow == true
	}
	every ref in ["refs/heads/main2", "refs/heads/v1", "refs/tags/x1", "refs/heads"] {
		d := mint.decision with input as octo({"ref": ref}, ["read"])
			with data.frostmint.config.github.repositories as github_site
		d.allow == false
		sprintf("ref %s is not allowed for octo/app", [ref]) in d.reasons
	}
}

test_github_any_branch if {
	d := mint.decision with input as gh({"repository": "octo/any", "ref": "refs/heads/anything"}, ["read"])
		with data.frostmint.config.github.repositories as github_site
	d.allow == true
}

test_github_no_branches_allows_no_ref if {
	d := mint.decision with input as gh({"repository": "octo/none"}, ["read"])
		with data.frostmint.config.github.repositories as github_site
	d.allow == false
	"ref refs/heads/main is not allowed for octo/none" in d.reasons
}

test_github_environment_allowed if {
	every env in ["production", "staging-eu", "staging-"] {
		d := mint.decision with input as octo({"environment": env}, ["deploy:prod"])
			with data.frostmint.config.github.repositories as github_site
		d.allow == true
		d.requires_approval == true
	}
}

test_github_environment_not_allowed if {
	every env in ["staging", "Production", "dev"] {
		d := mint.decision with input as octo({"environment": env}, ["read"])
			with data.frostmint.config.github.repositories as github_site
		d.allow == false
		d.reasons == [sprintf("environment %s is not allowed for octo/app", [env])]
	}
}

test_github_environment_required if {
	every claims in [
		object.remove(object.union(gh_claims, {"repository": "octo/app"}), ["environment"]),
		object.union(gh_claims, {"repository": "octo/app", "environment": ""}),
	] {
		d := mint.decision with input as oidc_req("github", claims, ["read"])
			with data.frostmint.config.github.repositories as github_site
		d.allow == false
		d.reasons == ["a GitHub environment is required for octo/app"]
	}
}

test_github_empty_environments_allow_none if {
	d := mint.decision with input as gh({"repository": "octo/noenv", "environment": "production"}, ["read"])
		with data.frostmint.config.github.repositories as github_site
	d.allow == false
	"environment production is not allowed for octo/noenv" in d.reasons
}

test_github_environment_ignored_when_not_configured if {
	d := mint.decision with input as gh({"environment": "anything"}, ["read"])
	d.allow == true
}

test_github_scope_prefix_grant if {
	d := mint.decision with input as octo({"ref": "refs/heads/main"}, ["deploy:staging", "deploy:prod/eu"])
		with data.frostmint.config.github.repositories as github_site
	d.allow == true
	d.max_ttl_seconds == 600
	d.requires_approval == true
}

test_github_all_reasons_at_once if {
	d := mint.decision with input as octo({"ref": "refs/heads/dev", "environment": "dev"}, ["write"])
		with data.frostmint.config.github.repositories as github_site
	d.allow == false
	d.reasons == [
		"caller github:repo:octo/app:environment:production may not request scope \"write\"",
		"environment dev is not allowed for octo/app",
		"ref refs/heads/dev is not allowed for octo/app",
	]
}

test_github_unconfigured_denies if {
	d := mint.decision with input as gh({}, ["read"])
		with data.frostmint.config as {"trust_domains": ["dev.frostmint.local"]}
	d.allow == false
	"repository frostmint/demo is not allowed" in d.reasons
}

# --- Kubernetes --------------------------------------------------------------------

test_k8s_payments_api_may_mint if {
	d := mint.decision with input as k8s("payments", "api", ["payments:read", "payments:write"])
	d.allow == true
	d.reasons == []
	d.max_ttl_seconds == 900
}

test_k8s_other_service_account_denied if {
	d := mint.decision with input as k8s("payments", "worker", ["payments:read"])
	d.allow == false
	d.reasons == ["service account payments/worker is not allowed"]
}

test_k8s_other_namespace_denied if {
	d := mint.decision with input as k8s("billing", "api", ["payments:read"])
	d.allow == false
	d.reasons == ["service account billing/api is not allowed"]
}

test_k8s_scope_not_allowed if {
	every scope in ["payments:refund", "read", "billing:read", "payments:read2"] {
		d := mint.decision with input as k8s("payments", "api", [scope])
		d.allow == false
		d.reasons == [sprintf("caller k8s:system:serviceaccount:payments:api may not request scope %q", [scope])]
	}
}

test_k8s_namespace_wide_entry if {
	accounts := {
		"ops/*": {"scopes": ["ops:read"]},
		"ops/admin": {"scopes": ["admin:*"]},
	}
	d1 := mint.decision with input as k8s("ops", "anyone", ["ops:read"])
		with data.frostmint.config.kubernetes.service_accounts as accounts
	d1.allow == true

	d2 := mint.decision with input as k8s("ops", "admin", ["ops:read", "admin:keys"])
		with data.frostmint.config.kubernetes.service_accounts as accounts
	d2.allow == true
	d2.max_ttl_seconds == 300

	d3 := mint.decision with input as k8s("ops", "anyone", ["admin:keys"])
		with data.frostmint.config.kubernetes.service_accounts as accounts
	d3.allow == false
	d3.reasons == ["caller k8s:system:serviceaccount:ops:anyone may not request scope \"admin:keys\""]

	d4 := mint.decision with input as k8s("ops2", "admin", ["ops:read"])
		with data.frostmint.config.kubernetes.service_accounts as accounts
	d4.allow == false
	d4.reasons == ["service account ops2/admin is not allowed"]
}

# The payments/api claims with "kubernetes.io" replaced by info.
k8s_info(info) := object.union(object.remove(k8s_claims("payments", "api"), ["kubernetes.io"]), {"kubernetes.io": info})

test_k8s_missing_claims_denied if {
	no_namespace := "Kubernetes token lacks the kubernetes.io namespace claim"
	no_name := "Kubernetes token lacks the kubernetes.io serviceaccount name claim"
	every case in [
		[no_namespace, k8s_info({"serviceaccount": {"name": "api"}})],
		[no_namespace, k8s_info({"namespace": "", "serviceaccount": {"name": "api"}})],
		[no_namespace, k8s_info({"namespace": ["payments"], "serviceaccount": {"name": "api"}})],
		[no_name, k8s_info({"namespace": "payments"})],
		[no_name, k8s_info({"namespace": "payments", "serviceaccount": "api"})],
		[no_name, k8s_info({"namespace": "payments", "serviceaccount": {"name": 3}})],
		[no_namespace, k8s_info("payments/api")],
		[no_name, k8s_info(null)],
		[no_namespace, object.remove(k8s_claims("payments", "api"), ["kubernetes.io"])],
		[no_name, object.remove(k8s_claims("payments", "api"), ["kubernetes.io"])],
	] {
		d := mint.decision with input as oidc_req("k8s", case[1], ["payments:read"])
		d.allow == false
		case[0] in d.reasons
	}
}

test_k8s_sub_must_name_the_service_account if {
	claims := object.union(k8s_claims("payments", "api"), {"sub": "system:serviceaccount:payments:worker"})
	d := mint.decision with input as oidc_req("k8s", claims, ["payments:read"])
	d.allow == false
	d.reasons == ["sub claim does not name service account payments/api"]
}

test_k8s_unconfigured_denies if {
	d := mint.decision with input as k8s("payments", "api", ["payments:read"])
		with data.frostmint.config as {"trust_domains": ["dev.frostmint.local"]}
	d.allow == false
	d.reasons == ["service account payments/api is not allowed"]
}

test_oidc_request_shape_checked if {
	d := mint.decision with input as object.union(k8s("payments", "api", []), {"request": {"audience": "", "scopes": [], "ttl_seconds": -1}})
	d.allow == false
	d.reasons == [
		"at least one scope is required",
		"audience must be a non-empty string",
		"ttl_seconds must be a non-negative number",
	]
}

test_denied_decision_is_well_formed if {
	d := mint.decision with input as {}
	d.allow == false
	count(d.reasons) > 0
	is_number(d.max_ttl_seconds)
	is_boolean(d.requires_approval)
}
