"""The dashboard's parts beside the app: the prober, the status polling, the operator's
actions and jobs, the command palette and a served session's feed. Each does one job for
the app (`ecmptui.app`), through what `host.Dashboard` says the app offers."""
