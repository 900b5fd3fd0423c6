"""`python -m app` runs the `kizuna` command line."""

from app.cli import main

main()
