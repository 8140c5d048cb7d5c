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
#   input.caller.subject      SPIFFE ID from the mTLS client certificate
#   input.caller.client_id    client identifier
#   input.caller.kind         "x509-svid" (later "oidc")
#   input.caller.claims       optional extra claims
#   input.request.audience    requested "aud"
#   input.request.scopes      requested scopes (always an array)
#   input.request.ttl_seconds requested lifetime (0 = server default)
#   input.time / time_unix    evaluation time (RFC 3339 / Unix seconds)
#   input.signer_id           0 at the coordinator, the signer's id at a signer
#
# The policy must be a pure function of input and data: every signer
# evaluates it independently and they must agree. Network and random
# built-ins are therefore not available, and time.now_ns() returns input.time.
#
# Configuration lives in data.frostmint.config (bundle/data.json); see the
# "Configuration" section below for the keys and their fallbacks. Missing
# trust domains or grants deny everything rather than guessing.
#
# Rules, in order of evaluation:
#
#  1. The caller's subject must be a well-formed SPIFFE ID
#     (spiffe://<trust-domain>/<path>, no empty, "." or ".." segments) whose
#     trust domain is listed in config.trust_domains.
#  2. The audience must be a non-empty string.
#  3. One to config.max_scopes (16) scopes, each matching scope_pattern.
#  4. Every scope must be permitted for the caller, by one of:
#     a. the team rule: a caller spiffe://<td>/team/<team>/<workload...> may
#        request scopes "<team>:<anything>" and the generic scopes in
#        config.team_generic_scopes ("read", "write"). So
#        spiffe://dev.frostmint.local/team/payments/ci may mint
#        "payments:refund" and "read", but not "billing:refund".
#     b. an explicit grant: config.grants maps a SPIFFE ID to the scopes it
#        may request; an entry ending in "*" is a prefix ("deploy:*").
#        The dev CLI (spiffe://dev.frostmint.local/dev/cli) is granted
#        "read" and "write" this way.
#  5. allow is true only when no deny reason fired AND the positive
#     conditions above hold (belt and braces: a bug that forgets a deny
#     reason still does not allow).
#  6. max_ttl_seconds is the minimum over the requested scopes of each
#     scope's limit: config.default_max_ttl_seconds (900), lowered by every
#     matching prefix in config.scope_ttl_limits ("admin:" -> 300).
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

# Lifetime limit for a scope that matches no entry in scope_ttl_limits.
default_max_ttl_seconds := object.get(config, "default_max_ttl_seconds", 900)

# Stricter limits by scope prefix: [{"prefix": p, "max_ttl_seconds": n}].
scope_ttl_limits := object.get(config, "scope_ttl_limits", [{"prefix": "admin:", "max_ttl_seconds": 300}])

# Scopes with one of these prefixes need a human approval.
approval_scope_prefixes := object.get(config, "approval_scope_prefixes", ["deploy:prod"])

# Scopes every team caller may request in addition to its own "<team>:" scopes.
team_generic_scopes := object.get(config, "team_generic_scopes", ["read", "write"])

# Explicit grants: {"spiffe://...": ["scope", "prefix:*"]}. No fallback.
grants := object.get(config, "grants", {})

# ---------------------------------------------------------------------------
# Caller
# ---------------------------------------------------------------------------

subject := input.caller.subject

# SPIFFE ID syntax: lower-case trust domain, at least one path segment of
# letters, digits, ".", "-" and "_". Dot segments are rejected separately.
spiffe_id_pattern := `^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)+$`

default subject_is_spiffe_id := false

subject_is_spiffe_id if {
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

# Explicit grant, exact.
scope_permitted(s) if {
	some g in caller_grants
	g == s
}

# Explicit grant, prefix ("deploy:*").
scope_permitted(s) if {
	some g in caller_grants
	is_string(g)
	endswith(g, "*")
	startswith(s, trim_suffix(g, "*"))
}

# ---------------------------------------------------------------------------
# Deny reasons
# ---------------------------------------------------------------------------

deny contains "caller subject must be a SPIFFE ID (spiffe://<trust-domain>/<path>)" if {
	not subject_is_spiffe_id
}

deny contains sprintf("trust domain %q is not trusted", [trust_domain]) if {
	subject_is_spiffe_id
	not subject_trusted
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
	subject_is_spiffe_id
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
	subject_is_spiffe_id
	subject_trusted
	valid_audience
	count(scopes) > 0
	every s in scopes {
		valid_scope(s)
		scope_permitted(s)
	}
}

# Lifetime limit of one scope: the default, lowered by every matching prefix.
scope_max_ttl_seconds(s) := min({default_max_ttl_seconds} | {limit.max_ttl_seconds |
	some limit in scope_ttl_limits
	startswith(s, limit.prefix)
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
