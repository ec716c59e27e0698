// Package rego is Tollgate's OPA engine: it compiles the Rego modules of a
// policy (with the built-in library data.tollgate.lib) once per policy
// generation into prepared queries, without network built-ins, and
// evaluates them within a time budget into violations. The same engine
// serves the webhook, `tollgate check`, `tollgate verify` and
// `tollgate policy test`.
//
// A module's rules follow the Conforma convention: `deny contains msg if
// {...}` and `warn contains msg if {...}`, where msg is a string or an
// object {"msg": string, "path": string}. Nothing here performs I/O or
// imports webhook/ or signer/.
package rego
