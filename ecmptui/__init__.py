"""ecmptui: an anycast load-balancing cockpit in the terminal."""

__version__ = "0.1.0"
