// Package security holds the broker's credentials and authorisation rules:
// the users file (SCRAM-SHA-256 salted credentials, also used to check SASL
// PLAIN), the ACL file and the Authorizer that evaluates it, and the
// server side of the SASL exchanges. Handlers ask it; they never parse
// either file. docs/SECURITY.md describes the model for operators.
//
// # Users file
//
// YAML, written by `metaq users add|remove` (never edited by hand in
// normal operation), mode 0600, replaced atomically (temp file + fsync +
// rename):
//
//	version: 1
//	users:
//	  alice:
//	    mechanism: SCRAM-SHA-256
//	    iterations: 4096              # PBKDF2 rounds, >= MinIterations
//	    salt: <base64, >= 16 bytes>
//	    storedKey: <base64 of H(HMAC(SaltedPassword, "Client Key")), 32 bytes>
//	    serverKey: <base64 of HMAC(SaltedPassword, "Server Key"), 32 bytes>
//
// The password itself is never stored. PLAIN is verified against the same
// entry: the broker derives SaltedPassword from the offered password, the
// entry's salt and iterations, and compares the StoredKey it yields with the
// stored one in constant time.
//
// # ACL file
//
// YAML, a list of rules; a request is allowed when at least one rule
// allows it (there are no deny rules):
//
//   - {principal: alice, operations: [put, get, offset, transaction], topics: ["orders*"], groups: ["billing"]}
//   - {principal: "ops-*", operations: [stats]}
//   - {principal: replicator, operations: [admin]}
//
// principal, topics and groups are patterns in which "*" matches any run
// of characters (and nothing else is special). A rule allows an operation
// when its principal pattern matches, the operation is listed (admin
// implies every operation, on every topic and group), the request's topic
// (if it has one) matches one of topics, and its group (if it has one)
// matches one of groups. A rule without topics therefore allows no
// operation on a topic, and one without groups no get or offset request
// of a consumer group.
//
// Without an ACL file (DefaultAuthorizer) every principal may do every
// operation except admin.
package security
