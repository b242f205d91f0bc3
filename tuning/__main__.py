"""``python -m tuning [COMMAND] ...`` — see ``--help``."""

from tuning.verbs import main

if __name__ == "__main__":
    raise SystemExit(main())
