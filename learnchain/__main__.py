"""``python -m learnchain``: the command line."""

from learnchain.node.cli import main

main(prog_name="learnchain")
