"""``python -m apps.forecast [COMMAND] ...`` — see ``--help``."""

from apps.common import cli
from apps.forecast import verbs

if __name__ == "__main__":
    raise SystemExit(cli.main(verbs.APP, verbs.VERBS, verbs.MAIN))
