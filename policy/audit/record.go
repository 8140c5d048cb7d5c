package audit

import "time"

// Requested is what a caller asked to mint.
type Requested struct {
	Audience   string   `json:"aud"`
	Scopes     []string `json:"scopes"`
	TTLSeconds int64    `json:"ttl_seconds"`
}

// Granted is what was minted.
type Granted struct {
	Audience   string `json:"aud"`
	Scope      string `json:"scope"`
	TTLSeconds int64  `json:"ttl_seconds"`
	Expiry     int64  `json:"exp"` // Unix seconds
}

// Record is one decision. Its JSON encoding is the "record" of a log line.
type Record struct {
	Time         time.Time  `json:"time"`   // set by Append from the clock if zero; stored in UTC
	Daemon       string     `json:"daemon"` // "coordinator", "signer-2", "verifier"
	RequestID    string     `json:"request_id,omitempty"`
	Decision     string     `json:"decision"`       // Allow or Deny; Append refuses anything else
	Code         string     `json:"code,omitempty"` // stable reason code for denials, e.g. "policy_denied", "evidence_reused"
	Subject      string     `json:"sub,omitempty"`
	ClientID     string     `json:"client_id,omitempty"`
	EvidenceKind string     `json:"evidence_kind,omitempty"`
	Requested    *Requested `json:"requested,omitempty"`
	Granted      *Granted   `json:"granted,omitempty"`
	Reasons      []string   `json:"reasons,omitempty"`
	PolicyHash   string     `json:"policy_hash,omitempty"`
	Signers      []uint16   `json:"signers,omitempty"` // the signers whose shares made the token
	JTI          string     `json:"jti,omitempty"`
	// Route is the verifier's route (gateway and middleware records).
	Route string `json:"route,omitempty"`
	// KeyID is the key epoch (kid) a token was, or would have been,
	// signed with.
	KeyID string `json:"kid,omitempty"`
	// Approval names the guardian and engineer who approved a token that
	// needed approval.
	Approval *Approval `json:"approval,omitempty"`
	// InvalidShares names the signers whose signature share failed
	// verification for this request (coordinator records): culprits, left
	// out of the token and quarantined.
	InvalidShares []uint16 `json:"invalid_shares,omitempty"`
}

// Approval is who approved a token.
type Approval struct {
	// Guardian is the approving guardian's SPIFFE ID.
	Guardian string `json:"guardian"`
	// Approver is the engineer, as the guardian knows them (user@host).
	Approver string `json:"approver,omitempty"`
}
