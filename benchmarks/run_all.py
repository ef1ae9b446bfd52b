"""Run the three benchmarks with their default sizes and print one markdown report:
the machine, the commands, and each table. `--output FILE` writes it there too (the
tracked benchmarks/RESULTS.md is only replaced when named).

    .venv/bin/python benchmarks/run_all.py             # about 5-10 minutes
    .venv/bin/python benchmarks/run_all.py --dir /data/scratch --output benchmarks/RESULTS.md

Arguments after `--ingest`, `--read` or `--import` go to that script, e.g.
    .venv/bin/python benchmarks/run_all.py --ingest "--rows 20000000" --import "--chunks 40"
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import _common as c
import import_files
import ingest
import read

SCRIPTS = (("ingest", ingest, "Ingest"), ("read", read, "Read"),
           ("import", import_files, "Import (CLI)"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=None, help="scratch directory (default: current)")
    parser.add_argument("--output", default=None, help="also write the report to this file "
                        "(e.g. benchmarks/RESULTS.md, the tracked one; default: print only)")
    parser.add_argument("--quiet", "-q", action="store_true")
    for name, _, _ in SCRIPTS:
        parser.add_argument(f"--{name}", default="", metavar="ARGS",
                            help=f"extra arguments for {name} (one quoted string)")
    args = parser.parse_args(argv)
    info = c.machine()
    sections = [
        "# Benchmark results",
        "",
        f"- machine: {info['cpu']}; {info['os']}; scratch files on {c.filesystem(args.dir)}",
        f"- versions: {info['versions']}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- ratios are per round (every case runs once per round, back to back, in rotating "
        "order), reported as the median over rounds and their range; >1× is faster than "
        "the pyarrow baseline",
    ]
    for name, module, title in SCRIPTS:
        extra = shlex.split(getattr(args, name))
        if args.dir:
            extra += ["--dir", args.dir]
        command = " ".join(["python", f"benchmarks/{Path(module.__file__).name}",
                            *map(shlex.quote, extra)])
        script_args = module.parser().parse_args(extra + (["-q"] if args.quiet else []))
        started = time.perf_counter()
        report, _ = module.run(script_args)
        minutes = (time.perf_counter() - started) / 60
        sections += ["", f"## {title}", "", f"`{command}` ({minutes:.1f} min)", "", report]
        print(f"{title}: done in {minutes:.1f} min", file=sys.stderr)
    text = "\n".join(sections) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
