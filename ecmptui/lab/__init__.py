"""The embedded default target: a Metal-compatible cloud on this machine.

`fabric` builds namespaces and links, `router` drives the core router's BIRD, `store` holds the
API's objects, `api` serves them over HTTPS, `daemon` is the `lab up` supervisor and `control`
is what the CLI calls (up, down, status).
"""
