"""``python -m node.cli``."""

from node.cli import main

if __name__ == "__main__":
    main()
