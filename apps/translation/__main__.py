"""``python -m apps.translation [COMMAND] ...`` — see ``--help``."""

from apps.common import cli
from apps.translation import verbs

if __name__ == "__main__":
    raise SystemExit(cli.main(verbs.APP, verbs.VERBS, verbs.MAIN))
