"""Runs rnnsuite's benchmarks: ``python -m benchmarks [NAME ...] [--out DIR] [--quick]``.

With no NAME it runs the issue-10 suite: cells, roofline, generation, export, pipelines,
scaling, backends. ``--list`` shows every name. Suite benchmarks (cells, roofline, scaling,
backends) run in this process; the others are scripts ``benchmarks/<script>.py`` run in a
subprocess with ``--quick`` / ``--out`` where the script takes them. Arguments after ``--``
are handed to every script run in a subprocess. Each benchmark writes ``<name>.json`` and
``<name>.md`` under ``--out`` (default ``benchmarks/out``).

Examples::

    python -m benchmarks --quick                    # everything, small settings
    python -m benchmarks cells roofline             # the full cells and roofline runs
    python -m benchmarks cells --units 256 --cells mut1,genotype_lstm
    python -m benchmarks sentiment_imdb --quick     # one app script
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SUITE = ("cells", "roofline", "scaling", "backends")  # modules of this package
LIBRARY_MODULES = {"__init__", "__main__", "common", *SUITE}


@dataclasses.dataclass(frozen=True)
class Script:
    """An app benchmark script and the arguments that map an issue-10 name onto it."""

    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)
    takes_out: bool = True
    about: str = ""


# Issue-10 names served by scripts that app helpers wrote (their flags, not ours).
ALIASES: dict[str, Script] = {
    "generation": Script(
        "export_generation.py",
        about="char LM tokens/s: one-step loop vs re-running the prefix, TFLite and Keras",
    ),
    "export": Script(
        "export_latency.py", about="TFLite float/dynamic/int8 vs Keras batch-1 latency, sizes"
    ),
    "pipelines": Script(
        "pipelines_apps.py", about="every app's input pipeline examples/s vs its model's"
    ),
}
DEFAULT = ("cells", "roofline", "generation", "export", "pipelines", "scaling", "backends")


def app_scripts() -> dict[str, Script]:
    """Every ``benchmarks/*.py`` script that is not part of this package, by module name."""
    scripts = {}
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.stem in LIBRARY_MODULES:
            continue
        text = path.read_text(errors="replace")
        first = text.split('"""', 2)[1].strip().splitlines()[0] if text.count('"""') >= 2 else ""
        scripts[path.stem] = Script(
            path.name,
            quick=("--quick",) if '"--quick"' in text else (),
            takes_out='"--out"' in text,
            about=first,
        )
    return scripts


def catalogue() -> dict[str, str]:
    """``{name: one-line description}`` of every runnable benchmark."""
    names = {}
    for name in SUITE:
        doc = importlib.import_module(f"benchmarks.{name}").__doc__ or ""
        names[name] = doc.strip().splitlines()[0]
    for name, script in ALIASES.items():
        names[name] = f"{script.about} [benchmarks/{script.script}]"
    for name, script in app_scripts().items():
        names[name] = f"{script.about} [benchmarks/{script.script}]"
    return names


def script_command(script: Script, out: Path, quick: bool, extra: Sequence[str]) -> list[str]:
    """The subprocess command line running ``script``."""
    cmd = [sys.executable, str(BENCH_DIR / script.script)]
    cmd += list(script.quick if quick else script.full)
    if script.takes_out:
        cmd += ["--out", str(out)]
    return cmd + list(extra)


def build_parser() -> argparse.ArgumentParser:
    from benchmarks import cells, roofline, scaling

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.split("\n\n")[0],
        epilog="Run with --list for every NAME.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run")
    parser.add_argument("--out", default=str(BENCH_DIR / "out"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    group = parser.add_argument_group("suite options (cells, roofline, scaling, backends)")
    cells.add_arguments(group)
    roofline.add_roofline_arguments(group)
    scaling.add_scaling_arguments(group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, about in catalogue().items():
            print(f"{name:28s} {about}")
        return 0
    names = args.names or list(DEFAULT)
    scripts = app_scripts()
    unknown = [n for n in names if n not in SUITE and n not in ALIASES and n not in scripts]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; see --list")
    out = Path(args.out)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        if name in SUITE:
            from benchmarks import common

            common.configure_threads(args.threads)
            module = importlib.import_module(f"benchmarks.{name}")
            status = module.run_from_args(args, out)
        else:
            script = ALIASES.get(name) or scripts[name]
            cmd = script_command(script, out, args.quick, extra)
            print("$ " + " ".join(cmd[1:]), flush=True)
            status = subprocess.run(cmd, cwd=REPO, check=False).returncode
        if status != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
