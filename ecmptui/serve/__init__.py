"""`ecmptui serve`: the dashboard over SSH, with one shared feed and an audit log."""

from ecmptui.serve.ssh import ServeConfig, parse_listen, serve

__all__ = ["ServeConfig", "parse_listen", "serve"]
