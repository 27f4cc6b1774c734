"""``python -m vidcap`` runs the command-line interface."""

from vidcap.cli import main

if __name__ == "__main__":
    main()
