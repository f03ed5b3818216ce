"""`python -m ecmptui` runs the CLI."""

from ecmptui.cli import main

raise SystemExit(main())
