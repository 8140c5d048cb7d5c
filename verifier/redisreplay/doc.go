// Package redisreplay is a [verifier.ReplayCache] shared by several verifier
// processes through Redis.
//
// A frostmint token is meant for one use, and a verifier refuses a token it
// has already accepted. [verifier.MemoryReplayCache] does that within one
// process only: behind several gateway processes, a token could be replayed
// once per process. A [Cache] keeps the tokens accepted in one Redis server
// that every verifier shares, so that a token is accepted once in all.
//
// # How
//
// [Cache.Seen] is one round trip, one atomic command:
//
//	SET <prefix><hex(SHA-256(key))> 1 PX <ms until expiry> NX
//
// OK means the token was not seen and is now recorded; a nil reply means it
// was. Of concurrent calls with one key, Redis lets exactly one SET NX
// succeed. Keys are hashed, so Redis never holds token ids, and every key
// expires with the token (the TTL is the time left until the expiry the
// verifier passes, exp plus leeway, rounded up to the millisecond and
// measured on the verifier's clock, so the Redis server's clock does not
// matter).
//
// # Failing closed
//
// When Redis cannot answer (it is down, slow, read-only, out of memory,
// rejects the credentials, or answers something unexpected), Seen returns
// an error wrapping [ErrUnavailable] and never "not seen": the verifier then
// refuses the token (code replay_store_unavailable). Every network step is
// bounded by the [Config] timeouts, which are short by default, and by the
// caller's context, so that a hanging Redis refuses requests quickly rather
// than holding them. Seen is not retried: a refusal is cheap for a client to
// retry, and a second try could only turn a first sighting into a replay.
//
// Redis may come and go: [New] does not connect, and a [Cache] reconnects by
// itself when Redis returns. After many failed connection attempts in a row
// the client stops dialing on every call and probes Redis once a second
// instead, so service resumes within about a second of Redis's return.
// Those failed attempts are logged through go-redis's own global logger
// (see redis.SetLogger); a Cache logs nothing itself, and starts no
// goroutine of its own.
//
// # Persistence is required across Redis restarts
//
// A Redis server that restarts without its data forgets the tokens it
// recorded, and would accept each of them once more until they expire (up
// to the token lifetime plus leeway). For replay protection to hold across
// restarts, run Redis with its append-only file fsynced on every write:
//
//	appendonly yes
//	appendfsync always
//
// (appendfsync everysec may lose the last second of writes in a crash of
// the machine, but not of the process.) Replication does not replace this:
// it is asynchronous, and a failover to a replica may lose the writes the
// primary acknowledged last. A Cache talks to one server, at [Config.Addr].
//
// The verifiers' clocks should agree to within the verifier's leeway: each
// entry lives until the expiry measured on the clock of the verifier that
// recorded it.
package redisreplay
