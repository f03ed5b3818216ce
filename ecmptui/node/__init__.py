"""One server over SSH: its routing daemon (BIRD or FRR), nginx, EIP and health check, and
the lab's faults.

`server` (the connection and the node's actions), `layout` (Debian's places and units),
`remote_shell` (one persistent `sh` per connection), `routing` (the routing-daemon port:
`RoutingDaemon`, `Session`), its adapters `bird_daemon` and `frr_daemon` with their pure
halves `bird` and `frr` (config rendering, parsing what the daemon prints), `daemons` and
`daemon_names` (which adapter a node gets), `nginx` (the page), `health` (the checker's unit)
and `healthcheck` (the checker itself, copied to the node), `faults` (lab faults and
restore), `failure` (`NodeError`). Knows nothing of APIs, targets or the dashboard.
"""
