"""Allow ``python -m get3w_cli``."""

from get3w_cli.cli import main

main()
