"""Parameterized reports: validate parameters, execute a template with papermill, export results.

A report template is a notebook in ``mcviz.notebooks`` (the repository's ``notebooks/`` folder)
or any ``.ipynb`` path. Its cell tagged ``parameters`` declares every parameter (see
``mcviz._params`` for the grammar). :func:`run` validates the values before anything runs,
executes the notebook with the kernel of the running interpreter in the template's folder and
writes a run folder atomically::

    reports/compare-20250101-120000/
        compare.ipynb   executed notebook
        index.html      offline page: every figure renders with no network
        results.csv     the metric rows the template passed to record()
        results.json    rows + parameters + environment (versions, CPU, threads, seed, timing)

The package has one module per job: ``_templates`` (find, read once, check parameters),
``_runner`` (papermill, the run folder, failures), ``_signals`` (stopping cleanly on Ctrl-C,
SIGTERM or SIGHUP), ``_text`` (what templates call: ``record`` and the computed sentences) and
``_environment`` (what ``results.json`` records).

Example:
    >>> folder = mcv.reports.run("compare", {"dataset": "digits", "epochs": 1})  # doctest: +SKIP
"""

from __future__ import annotations

from mcviz._params import Param, ParameterError, ParameterTypeError, from_text
from mcviz.reports._environment import environment
from mcviz.reports._runner import PARAMETER_ERRORS, TIMEOUT, ReportError, emitted_warnings, run
from mcviz.reports._signals import Interrupted, stopping_on_signals
from mcviz.reports._templates import (
    Template,
    description,
    load,
    parameters,
    template_name,
    template_path,
    templates,
    validate,
)
from mcviz.reports._text import RESULTS_ENV, budget_summary, record, summary

__all__ = [
    "PARAMETER_ERRORS",
    "RESULTS_ENV",
    "Param",
    "Interrupted",
    "ParameterError",
    "ParameterTypeError",
    "ReportError",
    "TIMEOUT",
    "Template",
    "budget_summary",
    "description",
    "emitted_warnings",
    "environment",
    "from_text",
    "load",
    "parameters",
    "record",
    "run",
    "stopping_on_signals",
    "summary",
    "template_name",
    "template_path",
    "templates",
    "validate",
]
