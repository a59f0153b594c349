"""``python -m node.cli``."""

from node.cli import main

main()
