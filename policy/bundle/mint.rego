# Default frostmint mint policy.
#
# The policy answers one question: may this caller mint an access token for
# this audience with these scopes, and under which limits? The Go side
# (package policy) queries data.frostmint.mint.decision and expects exactly
#
#   {
#     "allow":             bool,     # mint or not
#     "reasons":           [string], # why denied; notes when allowed
#     "max_ttl_seconds":   number,   # 0 = no policy limit (the 15m hard cap still applies)
#     "requires_approval": bool,     # a human must approve before signing
#   }
#
# Anything else (undefined, wrong types, evaluation errors) makes the Go side
# fail closed, so this file never has to be defensive about being
# misunderstood; it only has to be right.
#
# Input (rendered by policy.Input):
#
#   input.caller.kind         "x509-svid" (mTLS client certificate) or "oidc" (ID token)
#   input.caller.subject      x509-svid: the SPIFFE ID of the certificate;
#                             oidc: "<issuer>:<sub claim>", e.g.
#                             "github:repo:octo/app:ref:refs/heads/main" or
#                             "k8s:system:serviceaccount:prod:api"
#   input.caller.issuer       oidc only: the short name of the trusted issuer
#                             ("github" for GitHub Actions, "k8s" for Kubernetes)
#   input.caller.client_id    client identifier
#   input.caller.claims       oidc: every claim of the verified ID token
#   input.request.audience    requested "aud"
#   input.request.scopes      requested scopes (always an array)
#   input.request.ttl_seconds requested lifetime (0 = server default)
#   input.time / time_unix    evaluation time (RFC 3339 / Unix seconds)
#   input.signer_id           0 at the coordinator, the signer's id at a signer
#
# The policy must be a pure function of input and data: the coordinator and
# every signer evaluate it independently and they must agree. Network and
# random built-ins are therefore not available, and time.now_ns() returns
# input.time.
#
# Configuration lives in data.frostmint.config (bundle/data.json); see the
# "Configuration" section below for the keys and their fallbacks. Operators
# change who may mint what by editing data, not this file. Missing trust
# domains, grants, repositories or service accounts deny everything rather
# than guessing.
#
# Rules:
#
#  1. The caller kind must be "x509-svid" or "oidc", and an "oidc" caller's
#     issuer must be "github" or "k8s". Anything else is denied.
#  2. Certificate callers (x509-svid):
#     a. the subject must be a well-formed SPIFFE ID
#        (spiffe://<trust-domain>/<path>, no empty, "." or ".." segments)
#        whose trust domain is listed in config.trust_domains;
#     b. every scope must be permitted, by one of
#        - the team rule: a caller spiffe://<td>/team/<team>/<workload...>
#          may request scopes "<team>:<anything>" and the generic scopes in
#          config.team_generic_scopes ("read", "write"). So
#          spiffe://dev.frostmint.local/team/payments/ci may mint
#          "payments:refund" and "read", but not "billing:refund";
#        - an explicit grant: config.grants maps a SPIFFE ID to the scopes
#          it may request. The dev CLI (spiffe://dev.frostmint.local/dev/cli)
#          is granted "read" and "write" this way.
#  3. OIDC callers: the subject must be "<issuer>:<sub claim>" (a check that
#     the authenticator and the policy agree on who this is; an issuer
#     configured with another subject claim is listed in
#     config.oidc_subject_claims), and then
#     a. GitHub Actions (issuer "github"): config.github.repositories maps
#        the token's "repository" claim ("owner/repo") to
#          {"branches": [...], "environments": [...], "scopes": [...]}.
#        The "ref" claim must match one of "branches" (full ref names such
#        as "refs/heads/main" or "refs/tags/v*"; "*" allows any ref). If
#        "environments" is present, the "environment" claim must match one
#        of them (a job without a GitHub environment is then denied). Every
#        scope must match one of "scopes". The shipped example lets
#        frostmint/demo mint "read" and "deploy:staging" from
#        refs/heads/main.
#     b. Kubernetes (issuer "k8s"): config.kubernetes.service_accounts maps
#        "<namespace>/<name>" of the token's kubernetes.io claims (or
#        "<namespace>/*" for every service account of a namespace) to
#          {"scopes": [...]}.
#        The sub claim must be system:serviceaccount:<namespace>:<name> for
#        that same account. Every scope must match one of "scopes" (of the
#        exact entry or of the namespace entry). The shipped example lets
#        payments/api mint "payments:read" and "payments:write".
#     A pattern (a grant, a branch, an environment) matches a value equal to
#     it, or, when it ends in "*", any value starting with the part before
#     the "*".
#  4. The audience must be a non-empty string; one to config.max_scopes (16)
#     scopes, each matching scope_pattern; ttl_seconds not negative.
#  5. allow is true only when no deny reason fired AND the positive
#     conditions above hold (belt and braces: a bug that forgets a deny
#     reason still does not allow).
#  6. max_ttl_seconds is the minimum over the requested scopes of each
#     scope's limit: config.default_max_ttl_seconds (900), lowered by every
#     matching prefix in config.ttl_seconds ("admin:" -> 300, "deploy:" ->
#     600).
#  7. requires_approval is true when any scope starts with a prefix in
#     config.approval_scope_prefixes ("deploy:prod").
package frostmint.mint

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

default config := {}

config := data.frostmint.config

# Trusted SPIFFE trust domains. No fallback: an unconfigured policy denies.
trust_domains := {td | some td in object.get(config, "trust_domains", [])}

# Most scopes one token may carry.
max_scopes := object.get(config, "max_scopes", 16)

# Lifetime limit for a scope that matches no prefix in ttl_seconds.
default_max_ttl_seconds := object.get(config, "default_max_ttl_seconds", 900)

# Stricter lifetime limits, as [prefix, seconds] pairs, from
#   ttl_seconds:      {"admin:": 300, "deploy:": 600}
# and, for configurations written before ttl_seconds existed,
#   scope_ttl_limits: [{"prefix": "admin:", "max_ttl_seconds": 300}].
# With neither configured, "admin:" scopes live at most 300 seconds.
ttl_limits contains [prefix, seconds] if {
	some prefix, seconds in object.get(config, "ttl_seconds", {})
}

ttl_limits contains [limit.prefix, limit.max_ttl_seconds] if {
	some limit in object.get(config, "scope_ttl_limits", [])
}

ttl_limits contains ["admin:", 300] if {
	not "ttl_seconds" in object.keys(config)
	not "scope_ttl_limits" in object.keys(config)
}

# Scopes with one of these prefixes need a human approval.
approval_scope_prefixes := object.get(config, "approval_scope_prefixes", ["deploy:prod"])

# Scopes every team caller may request in addition to its own "<team>:" scopes.
team_generic_scopes := object.get(config, "team_generic_scopes", ["read", "write"])

# Explicit grants: {"spiffe://...": ["scope", "prefix:*"]}. No fallback.
grants := object.get(config, "grants", {})

# GitHub Actions: {"owner/repo": {"branches": [...], "environments": [...], "scopes": [...]}}.
# No fallback.
github_repositories := object.get(object.get(config, "github", {}), "repositories", {})

# Kubernetes: {"<namespace>/<name>" or "<namespace>/*": {"scopes": [...]}}.
# No fallback.
k8s_service_accounts := object.get(object.get(config, "kubernetes", {}), "service_accounts", {})

# The claim OIDC callers are named by ("<issuer>:<claim value>"), by issuer,
# for issuers whose authenticator configuration sets another subject_claim
# than "sub": {"github": "job_workflow_ref"}.
oidc_subject_claims := object.get(config, "oidc_subject_claims", {})

# ---------------------------------------------------------------------------
# Caller
# ---------------------------------------------------------------------------

supported_kinds := {"x509-svid", "oidc"}

supported_issuers := {"github", "k8s"}

default caller_kind := ""

caller_kind := input.caller.kind

default caller_issuer := ""

caller_issuer := input.caller.issuer

subject := input.caller.subject

default claims := {}

claims := input.caller.claims if is_object(input.caller.claims)

svid_caller if caller_kind == "x509-svid"

oidc_caller if caller_kind == "oidc"

github_caller if {
	oidc_caller
	caller_issuer == "github"
}

k8s_caller if {
	oidc_caller
	caller_issuer == "k8s"
}

# pattern_matches(p, v): p equals v, or p ends in "*" and v starts with the
# rest of p.
pattern_matches(p, v) if {
	is_string(p)
	p == v
}

pattern_matches(p, v) if {
	is_string(p)
	is_string(v)
	endswith(p, "*")
	startswith(v, trim_suffix(p, "*"))
}

# A claim of the ID token that is a non-empty string.
string_claim(name) := v if {
	v := claims[name]
	is_string(v)
	v != ""
}

# --- certificate callers ---------------------------------------------------

# SPIFFE ID syntax: lower-case trust domain, at least one path segment of
# letters, digits, ".", "-" and "_". Dot segments are rejected separately.
spiffe_id_pattern := `^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)+$`

default subject_is_spiffe_id := false

subject_is_spiffe_id if {
	svid_caller
	is_string(subject)
	count(subject) <= 2048
	regex.match(spiffe_id_pattern, subject)
	not subject_has_dot_segment
}

subject_has_dot_segment if {
	some segment in split(subject, "/")
	segment in {".", ".."}
}

# ["<trust-domain>", "<path segment>", ...]
subject_segments := split(trim_prefix(subject, "spiffe://"), "/") if subject_is_spiffe_id

trust_domain := subject_segments[0]

subject_trusted if trust_domain in trust_domains

# The team of a caller spiffe://<td>/team/<team>/<workload...>; undefined for
# callers outside the team tree.
team_name_pattern := `^[a-z0-9][a-z0-9-]{0,31}$`

caller_team := subject_segments[2] if {
	count(subject_segments) >= 4
	subject_segments[1] == "team"
	regex.match(team_name_pattern, subject_segments[2])
}

caller_grants := object.get(grants, subject, []) if subject_is_spiffe_id

# --- OIDC callers ----------------------------------------------------------

# The authenticator names an OIDC caller "<issuer>:<subject claim>", where
# the subject claim is "sub" unless the issuer's configuration chose another
# (its subject_claim); config.oidc_subject_claims must then say the same.
oidc_subject_claim := object.get(oidc_subject_claims, caller_issuer, "sub")

oidc_subject_matches if {
	subject == concat(":", [caller_issuer, string_claim(oidc_subject_claim)])
}

# GitHub Actions.
github_repository := string_claim("repository") if github_caller

github_ref := string_claim("ref") if github_caller

github_entry := github_repositories[github_repository]

github_ref_allowed if {
	some branch in object.get(github_entry, "branches", [])
	pattern_matches(branch, github_ref)
}

# No "environments" key: any environment, or none.
github_environment_allowed if {
	github_entry
	not "environments" in object.keys(github_entry)
}

github_environment_allowed if {
	some env in github_entry.environments
	pattern_matches(env, string_claim("environment"))
}

# Kubernetes.
k8s_namespace := ns if {
	k8s_caller
	ns := claims["kubernetes.io"].namespace
	is_string(ns)
	ns != ""
}

k8s_service_account := name if {
	k8s_caller
	name := claims["kubernetes.io"].serviceaccount.name
	is_string(name)
	name != ""
}

k8s_account := concat("/", [k8s_namespace, k8s_service_account])

# The configured entries for this account: exact, and namespace-wide.
k8s_entries contains entry if {
	some key in {k8s_account, concat("/", [k8s_namespace, "*"])}
	entry := k8s_service_accounts[key]
}

k8s_sub_matches if {
	string_claim("sub") == concat(":", ["system:serviceaccount", k8s_namespace, k8s_service_account])
}

# --- any caller ------------------------------------------------------------

# The caller's identity is acceptable (its scopes are checked separately).
default caller_accepted := false

caller_accepted if {
	subject_is_spiffe_id
	subject_trusted
}

caller_accepted if {
	github_caller
	oidc_subject_matches
	github_entry
	github_ref_allowed
	github_environment_allowed
}

caller_accepted if {
	k8s_caller
	oidc_subject_matches
	k8s_sub_matches
	count(k8s_entries) > 0
}

# Callers recognised well enough to say which of their scopes are refused.
caller_known if subject_is_spiffe_id

caller_known if github_entry

caller_known if count(k8s_entries) > 0

# ---------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------

scopes := input.request.scopes

# A scope: lower-case letters, digits and ":._/-", 1 to 64 characters,
# starting with a letter or digit.
scope_pattern := `^[a-z0-9][a-z0-9:._/-]{0,63}$`

valid_scope(s) if {
	is_string(s)
	regex.match(scope_pattern, s)
}

valid_audience if {
	is_string(input.request.audience)
	trim_space(input.request.audience) != ""
}

# Team rule: "<team>:<something>".
scope_permitted(s) if {
	prefix := concat("", [caller_team, ":"])
	startswith(s, prefix)
	count(s) > count(prefix)
}

# Team rule: generic scopes.
scope_permitted(s) if {
	caller_team
	s in team_generic_scopes
}

# Explicit grant, exact or prefix ("deploy:*").
scope_permitted(s) if {
	some g in caller_grants
	pattern_matches(g, s)
}

# GitHub repository scopes.
scope_permitted(s) if {
	some g in object.get(github_entry, "scopes", [])
	pattern_matches(g, s)
}

# Kubernetes service account scopes.
scope_permitted(s) if {
	some entry in k8s_entries
	some g in object.get(entry, "scopes", [])
	pattern_matches(g, s)
}

# ---------------------------------------------------------------------------
# Deny reasons
# ---------------------------------------------------------------------------

deny contains sprintf("caller kind %s is not supported", [json.marshal(caller_kind)]) if {
	not caller_kind in supported_kinds
}

deny contains sprintf("OIDC issuer %s is not supported", [json.marshal(caller_issuer)]) if {
	oidc_caller
	not caller_issuer in supported_issuers
}

deny contains "caller subject must be a SPIFFE ID (spiffe://<trust-domain>/<path>)" if {
	svid_caller
	not subject_is_spiffe_id
}

deny contains sprintf("trust domain %q is not trusted", [trust_domain]) if {
	subject_is_spiffe_id
	not subject_trusted
}

deny contains sprintf("caller subject must be \"%s:\" followed by the token's %s claim", [caller_issuer, oidc_subject_claim]) if {
	oidc_caller
	caller_issuer in supported_issuers
	not oidc_subject_matches
}

deny contains sprintf("GitHub token lacks the %q claim", [name]) if {
	github_caller
	some name in ["repository", "ref"]
	not string_claim(name)
}

deny contains sprintf("repository %s is not allowed", [github_repository]) if {
	not github_entry
}

deny contains sprintf("ref %s is not allowed for %s", [github_ref, github_repository]) if {
	github_entry
	not github_ref_allowed
}

deny contains sprintf("a GitHub environment is required for %s", [github_repository]) if {
	"environments" in object.keys(github_entry)
	not string_claim("environment")
}

deny contains sprintf("environment %s is not allowed for %s", [string_claim("environment"), github_repository]) if {
	github_entry
	not github_environment_allowed
}

deny contains "Kubernetes token lacks the kubernetes.io namespace claim" if {
	k8s_caller
	not k8s_namespace
}

deny contains "Kubernetes token lacks the kubernetes.io serviceaccount name claim" if {
	k8s_caller
	not k8s_service_account
}

deny contains sprintf("service account %s is not allowed", [k8s_account]) if {
	count(k8s_entries) == 0
}

deny contains sprintf("sub claim does not name service account %s", [k8s_account]) if {
	not k8s_sub_matches
}

deny contains "audience must be a non-empty string" if not valid_audience

deny contains "scopes must be an array of strings" if not is_array(scopes)

deny contains "at least one scope is required" if {
	is_array(scopes)
	count(scopes) == 0
}

deny contains sprintf("too many scopes: %d requested, at most %d allowed", [count(scopes), max_scopes]) if {
	is_array(scopes)
	count(scopes) > max_scopes
}

deny contains sprintf("scope %v is malformed (want %s)", [s, scope_pattern]) if {
	some s in scopes
	not valid_scope(s)
}

deny contains sprintf("caller %s may not request scope %q", [subject, s]) if {
	caller_known
	some s in scopes
	valid_scope(s)
	not scope_permitted(s)
}

deny contains "ttl_seconds must be a non-negative number" if {
	not is_number(input.request.ttl_seconds)
}

deny contains "ttl_seconds must be a non-negative number" if {
	input.request.ttl_seconds < 0
}

# ---------------------------------------------------------------------------
# Decision
# ---------------------------------------------------------------------------

default allow := false

allow if {
	count(deny) == 0
	caller_accepted
	valid_audience
	count(scopes) > 0
	every s in scopes {
		valid_scope(s)
		scope_permitted(s)
	}
}

# Lifetime limit of one scope: the default, lowered by every matching prefix.
scope_max_ttl_seconds(s) := min({default_max_ttl_seconds} | {limit[1] |
	some limit in ttl_limits
	startswith(s, limit[0])
})

requested_scope_ttls := {scope_max_ttl_seconds(s) | some s in scopes; valid_scope(s)}

default max_ttl_seconds := 0

max_ttl_seconds := min(requested_scope_ttls) if count(requested_scope_ttls) > 0

default requires_approval := false

requires_approval if {
	some s in scopes
	valid_scope(s)
	some prefix in approval_scope_prefixes
	startswith(s, prefix)
}

# Notes for an allowed request: things the caller or an operator should know.
notes contains sprintf("scope %q requires approval", [s]) if {
	some s in scopes
	valid_scope(s)
	some prefix in approval_scope_prefixes
	startswith(s, prefix)
}

notes contains sprintf("requested ttl %vs exceeds the policy maximum %vs and will be capped", [input.request.ttl_seconds, max_ttl_seconds]) if {
	max_ttl_seconds > 0
	input.request.ttl_seconds > max_ttl_seconds
}

reasons := sort(notes) if allow

reasons := sort(deny) if {
	not allow
	count(deny) > 0
}

reasons := ["request is not allowed by any rule"] if {
	not allow
	count(deny) == 0
}

decision := {
	"allow": allow,
	"reasons": reasons,
	"max_ttl_seconds": max_ttl_seconds,
	"requires_approval": requires_approval,
}

#############################################################################
# Signer admission
#############################################################################
# When the coordinator verifies its signers' SEV-SNP attestation (its
# "attestation" config section), it asks this policy, for each signer and
# each attestation result, whether to use that signer for mints. The Go
# side (Engine.AdmitSigner) queries data.frostmint.mint.admit_signer and
# expects exactly
#
#   {"admit": bool, "reasons": [string]}
#
# Anything else (undefined, wrong types, errors) keeps the signer out. A
# policy without this rule admits every signer.
#
# Input:
#
#   input.signer.id                    the signer's id (1..n)
#   input.signer.identity              its SPIFFE ID
#   input.attestation.attested         true when its report verified
#   input.attestation.measurement      launch measurement, hex ("" when not attested)
#   input.attestation.tcb              {bootloader, tee, snp, microcode} (attested only)
#   input.attestation.policy           {debug, migration_agent, smt, single_socket, abi} (attested only)
#   input.attestation.guest_svn, chip_id, host_data, product_line (attested only)
#
# Configuration (data.frostmint.config.admission, bundle/data.json):
#
#   require_attestation  false (default): admit every signer;
#                        true: admit only attested signers, and when
#                        measurements is not empty only those whose
#                        measurement is listed.
#   measurements         allowed launch measurements (hex, lower case).

admission_cfg := object.get(data.frostmint.config, "admission", {})

admission_require_attestation := object.get(admission_cfg, "require_attestation", false)

admission_measurements := object.get(admission_cfg, "measurements", [])

admission_deny contains "signer is not attested" if {
	admission_require_attestation == true
	not input.attestation.attested == true
}

admission_deny contains sprintf("measurement %s is not allowed", [input.attestation.measurement]) if {
	admission_require_attestation == true
	input.attestation.attested == true
	count(admission_measurements) > 0
	not input.attestation.measurement in admission_measurements
}

admit_signer := {"admit": count(admission_deny) == 0, "reasons": sort([r | some r in admission_deny])}
