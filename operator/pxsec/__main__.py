"""`python -m pxsec` runs the command line."""

from pxsec.cli import main

raise SystemExit(main())
