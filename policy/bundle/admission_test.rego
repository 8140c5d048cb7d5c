package frostmint.mint_admission_test

import rego.v1

import data.frostmint.mint

good := "aa11"

strict := {"require_attestation": true, "measurements": [good]}

attested(m) := {"signer": {"id": 1, "identity": "spiffe://dev.frostmint.local/signer/1"}, "attestation": {"attested": true, "measurement": m}}

unattested := {"signer": {"id": 2, "identity": "spiffe://dev.frostmint.local/signer/2"}, "attestation": {"attested": false, "measurement": ""}}

# The default data admits everyone, attested or not.
test_default_admits_unattested if {
	mint.admit_signer == {"admit": true, "reasons": []} with input as unattested
}

test_default_admits_any_measurement if {
	mint.admit_signer.admit with input as attested("bb22")
}

# attested && measurement in allowed.
test_strict_admits_allowed_measurement if {
	mint.admit_signer == {"admit": true, "reasons": []} with input as attested(good)
		with data.frostmint.config.admission as strict
}

test_strict_refuses_other_measurement if {
	d := mint.admit_signer with input as attested("bb22") with data.frostmint.config.admission as strict
	d.admit == false
	d.reasons == ["measurement bb22 is not allowed"]
}

test_strict_refuses_unattested if {
	d := mint.admit_signer with input as unattested with data.frostmint.config.admission as strict
	d == {"admit": false, "reasons": ["signer is not attested"]}
}

test_strict_without_list_admits_any_attested if {
	mint.admit_signer.admit with input as attested("bb22")
		with data.frostmint.config.admission as {"require_attestation": true}
}
