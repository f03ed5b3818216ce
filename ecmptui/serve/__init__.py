"""`ecmptui serve`: the dashboard over SSH (`ssh`, `session`), one shared feed (`feed`, and
`client` in each session's app), sshd-grade limits (`guard`) and an audit log (`audit`).

Nothing is imported here, so a session's app loads only its client side."""
