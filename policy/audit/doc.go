// Package audit keeps frostmint's decision logs: append-only,
// tamper-evident NDJSON files, one per daemon.
//
// # Why
//
// Every daemon (the coordinator, each signer, the verifier) records every
// decision it makes, allow and deny alike, in its own log. The signers keep
// their own logs, on their own machines, so that what the coordinator says
// happened can be checked against what the signers say they signed: a token
// exists only if a threshold of signers produced signature shares, so every
// allow in the coordinator's log should be matched by an allow in the log of
// each signer it names, and no signer should have signed a token the
// coordinator does not account for. Diff performs that comparison.
//
// Audit is not best effort. Append returns nil only once the record is
// durable: its line has been written and fdatasynced. Any failure is
// returned, and the caller must then fail the operation being audited; a
// token that could not be audited must not be issued. After a failed write the state of the file is unknown, so the Log
// refuses all further appends (ErrUnusable); reopening the file with Open
// verifies it and repairs what an interrupted append can leave behind.
//
// # File format
//
// A log is a file of lines, each one JSON object followed by "\n":
//
//	{"seq":1,"prev":"b859aafb…c42527","record":{"time":"2026-03-04T05:06:07.00000089Z","daemon":"coordinator","request_id":"r1","decision":"allow",…}}
//	{"seq":2,"prev":"<hex SHA-256 of line 1>","record":{…}}
//
// In each line:
//
//   - seq numbers the lines 1, 2, 3, … with no gap.
//   - prev is the lowercase hex SHA-256 of the exact bytes of the previous
//     line, without its newline. The first line's prev is Genesis, the
//     SHA-256 of the string "frostmint audit v1"; the version in that string
//     names this format.
//   - record is a Record, with the JSON field names of its struct tags and
//     empty optional fields omitted. Its time is RFC 3339 in UTC with
//     trailing zero digits of the fraction dropped (Go's time.RFC3339Nano),
//     and never the zero time; its decision is "allow" or "deny".
//
// Each line is exactly what Go's encoding/json Marshal produces for it
// (fields in the order above, no insignificant white space, "<", ">" and
// "&" escaped as \u003c, \u003e and \u0026), and Verify re-encodes every
// line it decodes and refuses one whose bytes differ. So a line that
// verifies has exactly one meaning: no duplicate or differently cased
// keys, no unknown fields, nothing a reader other than this package could
// read differently. A line, without its newline, is at most MaxLineSize
// bytes.
//
// Next to the log at path is its head file, path+".head", holding one line:
//
//	{"seq":N,"hash":"<hex SHA-256 of line N>"}
//
// For an empty log it is {"seq":0,"hash":"<Genesis>"}; Open writes it when
// it creates a log. After appends, a background writer of the Log rewrites
// it for the last durable line (once appends pause for 2 ms, and at least
// every 100 ms under continuous load, so it lags the log by at most about
// that much), and Close brings it up to date.
// Each rewrite is atomic: it writes path+".head.tmp", fsyncs it, renames it
// over path+".head" and fsyncs the directory. The head file never counts a
// line that is not yet durable. If it cannot be rewritten, the Log becomes
// unusable, as after a failed write of a line.
//
// Keeping the head file off the appenders' path costs nothing in what it
// detects: it is written from the Log's memory, not from the file, so
// lines deleted while the head lags are still reported missing once it
// is written; only a crash in that window leaves a head that counts fewer
// lines, which is a state Open already has to accept (see Crashes).
//
// The head file is a checkpoint: line N must exist and its hash must match.
// Lines after line N are allowed because the head is written after the line:
// a reader that races an append (Verify reads the head before the log, so
// it never sees a head ahead of the lines it reads), or a crash between the
// two writes, leaves exactly such lines. Open brings a lagging head up to
// date.
//
// # What it detects
//
// Verify reads the whole chain and reports the first broken or missing line
// as a *BrokenError (errors.Is(err, ErrBroken)):
//
//   - changing any byte of a line: the line no longer decodes, is no longer
//     canonical, or its hash no longer matches the next line's prev (or the
//     head file, for the last line);
//   - reordering, inserting or deleting lines anywhere: seq runs 1, 2, 3, …
//     and every prev names its predecessor;
//   - deleting final lines, or truncating the file: the head file records
//     more lines than remain;
//   - deleting the head file of a non-empty log: a non-empty log must have
//     one (reported as the line after the last, missing);
//   - a final line without its newline (a torn write).
//
// When line j's prev does not match line j-1, either line could have been
// changed. Verify looks at the line after j (or the head file): if that
// confirms line j as written, line j-1 is named, and if it contradicts it,
// line j; when it cannot tell, it names the earlier line, j-1.
//
// # What it does not protect against
//
// The chain has no secret. Anyone who can write both the log and its head
// file can rewrite either consistently: change or drop records and
// recompute every later prev and the head, truncate the log and write a
// matching head, or delete both files. A single log therefore shows only
// accidental damage and edits that were not covered up. That is why each
// signer keeps its own log on its own machine and Diff compares them: to
// hide a token, an attacker must rewrite the coordinator's log and the
// logs of every signer that signed it, consistently. Shipping logs (or
// just their head hashes) off the machine strengthens this further.
// Nothing in a log is encrypted.
//
// # Crashes
//
// Appends are group-committed: the lines queued while a sync is under way
// are written together with one write and made durable with one
// fdatasync, and only then are their Appends acknowledged. The head file
// is rewritten only after the lines it counts are durable. So a crash
// leaves the acknowledged lines, then possibly part of the batch being
// written: complete lines the head file does not count, which were never
// acknowledged and which Open keeps (and then writes the head for), and at
// most one final line without its newline (torn), which Open truncates away
// (Recovered reports it) — unless the head file counts that line (then it
// was acknowledged and its loss is tampering, and Open refuses the log). A
// record whose Append failed may therefore appear in the log after
// recovery; a record whose Append returned nil always does.
//
// # Concurrency
//
// A Log is safe for concurrent use. Appends are ordered (seq, prev and
// times follow the order in which they take the Log's lock) and
// group-committed: concurrent appends share one fdatasync, and each
// returns only once its own line is durable. Close waits for the appends
// in flight. One Log at a time may hold a file: Open
// takes an exclusive advisory lock (flock, where the system has it) and
// fails with ErrLocked if another Log, in this or another process, holds
// it. Verify, ReadAll and Diff take no lock and may read a live log; one
// that catches an append in flight can report a torn final line, so retry
// or read a copy.
package audit
