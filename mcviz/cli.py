"""The ``mcviz`` command.

    mcviz --version
    mcviz report --list
    mcviz report compare --help
    mcviz report compare -p epochs 3 -p model lenet5 -f params.yaml -o reports/mine

Exit codes: 0 success, 1 the report failed while running (partial output in ``*-FAILED``),
2 bad usage, a bad parameter, or a run that could not start (an output folder that cannot be
written...): nothing was written; 128 + the signal's number when Ctrl-C (130), SIGTERM (143) or
SIGHUP (129) stopped it (partial output in a ``*-FAILED`` folder that the message names).
Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
from pathlib import Path

USAGE = "mcviz report NAME [-p NAME VALUE]... [-f PARAMS.yaml] [-o DIR] [-q] [--timeout S]"
MAX_MESSAGE = 1_000  # the longest error line printed: every value in it is shortened already


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (exit code 2) like every other error."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message[:MAX_MESSAGE]} (see {self.prog} --help)\n")


class _Once(argparse.Action):
    """Store an option's value, refusing the option given twice (the last one would silently win)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            raise argparse.ArgumentError(self, "given twice; give it once")
        setattr(namespace, self.dest, values)


def _version() -> str:
    import mcviz

    return mcviz.__version__


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Return the ``mcviz`` parser and its ``report`` subparser."""
    parser = _Parser(prog="mcviz", description="Reports and tools for neural-network model compression.")
    parser.add_argument("--version", action="version", version=f"mcviz {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = sub.add_parser(
        "report",
        add_help=False,
        usage=USAGE,
        help="run a parameterized report template (mcviz report --list)",
        description="Run a report template and write reports/<NAME>-<timestamp>/ with the "
        "executed notebook, index.html (offline), results.csv and results.json.",
    )
    report.add_argument("name", nargs="?", metavar="NAME", help="template name or .ipynb path")
    report.add_argument("-h", "--help", action="store_true", help="show help (of NAME if given)")
    report.add_argument("--list", action="store_true", help="list the available templates")
    report.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter; repeat a list parameter to give several items",
    )
    report.add_argument(
        "-f", "--file", action=_Once, metavar="PARAMS.yaml", help="YAML mapping of parameters"
    )
    report.add_argument(
        "-o", "--output", action=_Once, metavar="DIR", help="run folder (default reports/NAME-<timestamp>)"
    )
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    report.add_argument(
        "--timeout", action=_Once, metavar="S", help="seconds allowed per cell, at most 86400"
    )
    return parser, report


def _error(message: str) -> int:
    message = " ".join(str(message).split())
    print(f"mcviz report: error: {message[:MAX_MESSAGE]}", file=sys.stderr)
    return 2


def _short(text: str) -> str:
    """Return 'an int in [1, 200]' as 'int in [1, 200]' for the help table."""
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article) :]
    return text


def template_help(template) -> str:
    """Return the --help text of a template (a name, a path or a loaded ``Template``): every
    parameter with type, allowed values, default."""
    from mcviz import registry, reports

    template = reports.load(template)
    name = template.name
    lines = [f"usage: {USAGE.replace('NAME', name, 1)}", ""]
    if template.description:
        lines += [template.description, ""]
    lines.append("parameters (-p NAME VALUE, or a YAML mapping with -f; -p overrides -f):")
    for p in template.parameters:
        lines.append(f"  {p.name:<12} {_short(p.allowed)}; default {p.default!r}")
        lines += textwrap.wrap(p.help, 88, initial_indent=" " * 15, subsequent_indent=" " * 15)
    lines += [
        "",
        "registered methods (a spec is NAME or NAME:key=value,...; join specs with + to chain):",
    ]
    lines += ["  " + line for line in registry.describe()]
    lines += [
        "",
        "options:",
        "  -p NAME VALUE    set a parameter; a list parameter takes [a, b] or repeated -p",
        "  -f PARAMS.yaml   YAML mapping of parameters (relative paths are relative to the cwd)",
        f"  -o DIR           run folder (default reports/{name}-<timestamp>, relative to the cwd)",
        "  -q, --quiet      no progress bar",
        "  --timeout S      seconds allowed per cell, in (0, 86400] (default: no limit)",
        "  -h, --help       show this help",
    ]
    return "\n".join(lines)


def _collect(template, file: str | None, pairs: list[list[str]]) -> dict:
    """Return the parameter values from -f and -p (-p wins), each read as ``mcviz._param_values``
    reads text (``template``: a name, a path or a loaded ``mcviz.reports.Template``).

    Raises:
        ValueError, TypeError: an unreadable or malformed parameters file, a malformed value, or a
            parameter that is not a list given twice with -p (one line).
    """
    from mcviz import _param_values, _paths, _yaml, reports
    from mcviz._checks import PATH_LIMIT, shorten

    template = reports.load(template)
    declared = {p.name: p for p in template.parameters}
    values: dict = {}
    if file is not None:
        path = _paths.check_path(file, "-f", kind="file", allowed="a YAML file of parameters")
        what = f"parameters file {shorten(file, PATH_LIMIT)}"
        loaded = _yaml.load(_yaml.read_text(path, what), what, max_chars=_yaml.MAX_FILE_BYTES)
        if loaded is None:  # empty, or only comments
            loaded = {}
        if not isinstance(loaded, dict):
            kind = "list" if isinstance(loaded, list) else "single value"
            raise ValueError(f"{what} must be a YAML mapping of name: value, got a {kind}")
        for key, raw in loaded.items():  # unknown names are left for validate() to report
            values[key] = _param_values.from_yaml(declared[key], raw) if key in declared else raw
    from_cli: dict = {}
    texts: dict = {}
    for key, text in pairs:
        param = declared.get(key)
        if param is None:
            from_cli[key] = text  # validate() reports the unknown name
            continue
        value = reports.from_text(param, text)
        if key in from_cli and param.type != "list":
            raise reports.ParameterError(
                f"-p {key} is given twice ({shorten(texts[key])} and {shorten(text)}); give it once"
            )
        from_cli[key] = from_cli.get(key, []) + value if param.type == "list" else value
        texts[key] = text
    values.update(from_cli)
    return values


def _timeout(text: str | None) -> float | None:
    """Return --timeout as seconds (None: not given); one-line ValueError/TypeError otherwise."""
    from mcviz import _yaml, reports
    from mcviz._checks import check_number

    if text is None:
        return None
    return check_number(_yaml.scalar(text, "--timeout"), "--timeout (seconds)", bounds=reports.TIMEOUT)


def _report(args: argparse.Namespace, report_parser: argparse.ArgumentParser) -> int:
    from mcviz import reports

    if args.list:
        for name in reports.templates():
            print(f"{name:<12} {reports.description(name)}")
        return 0
    if args.name is None:
        if args.help:
            print(report_parser.format_help().rstrip())
            print(
                f"\ntemplates (mcviz report NAME --help lists its parameters): "
                f"{', '.join(reports.templates())}"
            )
            return 0
        return _error(f"give a template NAME; available: {', '.join(reports.templates())}")
    progress = not args.quiet and sys.stderr.isatty()
    try:
        with reports.stopping_on_signals():  # a signal before the run too: 128 + signum, nothing written
            folder = _run(args, progress)
            if folder is None:  # --help was shown
                return 0
    except reports.ReportError as exc:
        print(
            f"mcviz report: {reports.template_name(args.name)} failed in {exc.where}:\n"
            f"  {exc.error}\n  partial output: {_rel(exc.folder)}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as exc:  # Interrupted (a signal during the run or before it), or Ctrl-C
        signum = getattr(exc, "signum", signal.SIGINT)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        folder = getattr(exc, "folder", None)
        where = f"partial output: {_rel(folder)}" if folder else "nothing was written"
        print(f"mcviz report: interrupted by {name}; {where}", file=sys.stderr)
        return 128 + signum
    except (OSError, ValueError, TypeError) as exc:  # OSError: a folder cannot be written (nothing was)
        return _error(str(exc))
    for line in reports.emitted_warnings(folder):
        print(f"mcviz report: warning: {line}", file=sys.stderr)
    print(_rel(folder))
    return 0


def _run(args: argparse.Namespace, progress: bool) -> Path | None:
    """Return the run folder of ``mcviz report NAME ...`` (None after printing --help)."""
    from mcviz import _paths, reports

    template = reports.load(args.name)  # read once; run() validates the values
    if args.help:
        print(template_help(template))
        return None
    values = _collect(template, args.file, args.param)
    timeout = _timeout(args.timeout)
    if args.output is not None:
        _paths.output_folder(args.output, "-o")  # run() checks it too, naming it out_dir
    return reports.run(template, values, args.output, progress=progress, timeout=timeout)


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Run the ``mcviz`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser, report = _parsers()
    args = parser.parse_args(argv)
    if args.command == "report":
        return _report(args, report)
    parser.print_help()
    return 0
