"""Helpers shared by the test modules (imported as `helpers`: pytest puts tests/ on sys.path)."""
from __future__ import annotations

import re

from click.testing import CliRunner, Result

from rtalign.cli import main


def run_cli(*args) -> Result:
    """`rtalign ARGS` through click's runner (arguments may be paths or numbers)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result: Result, pattern: str, exit_code: int = 1) -> None:
    """The command stopped the way a user must see it fail: a deliberate exit, never a crash.

    CliRunner catches every exception and reports any crash as exit code 1 without a traceback, so
    the exit code alone proves nothing: the exception must be the SystemExit that click raises for a
    ClickException (code 1) or a usage error (code 2), and one `Error: ...` line must match `pattern`
    (a regular expression).
    """
    assert isinstance(result.exception, SystemExit), f"crashed instead of exiting: {result.exception!r}\n{result.output}"
    assert result.exit_code == exit_code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.output
    assert "Traceback" not in result.output
