"""The embedded default target: a Metal-compatible cloud on this machine.

`image` builds the cached Debian images, `machine` boots one (systemd as PID 1 in its own
namespaces), `firstboot` writes what Metal put on a new server, `fabric` builds namespaces and
links, `router` drives the core router machine's BIRD, `aptproxy` is the package proxy,
`cloud` holds the API's objects and their effects, `api` serves them over HTTPS, `daemon` is
the `lab up` supervisor and `control` is what the CLI calls (up, down, status, image).
Independent of the rest of ecmptui but for `node.bird` (rendering the router's config).
"""
