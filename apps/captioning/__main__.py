"""``python -m apps.captioning [COMMAND] ...`` — see ``--help``."""

from apps.captioning import verbs
from apps.common import cli

if __name__ == "__main__":
    raise SystemExit(cli.main(verbs.APP, verbs.VERBS, verbs.MAIN))
