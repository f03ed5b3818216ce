"""One server over SSH: its BIRD, nginx, EIP and health check, and the lab's faults.

`server` (the connection, Debian's layout, apply/withdraw/announce), `remote_shell` (one
persistent `sh` per connection), `bird` (config rendering, birdc parsing), `nginx` (the
page), `health` (the checker's unit) and `healthcheck` (the checker itself, copied to the
node), `faults` (lab faults and restore). Knows nothing of APIs, targets or the dashboard.
"""
