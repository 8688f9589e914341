"""Every error a user can meet: one base class, each message naming the place.

The CLI prints these and exits 2; the magics show them as one line. They cross
process boundaries (worker processes, Dask), so each one pickles.
"""

from __future__ import annotations

from dataclasses import dataclass

from .text import one_line


@dataclass(frozen=True)
class Problem:
    """One located complaint: where (file:line and/or step path) and what; always one line."""

    message: str
    step: str | None = None
    file: str | None = None
    line: int | None = None
    warning: bool = False

    def __str__(self) -> str:
        place = ""
        if self.file:
            place = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            place = f"line {self.line}: "
        who = f"step '{self.step}': " if self.step else ""
        return one_line(f"{place}{who}{self.message}")  # a name may hold a newline or an escape


class PipelineError(Exception):
    """Base of every error meant for the user; its text is the whole message."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # rebuilt from the message alone, so it crosses process boundaries intact
        return (self.__class__, (self.message,))


class PipelineYAMLError(PipelineError):
    """The pipeline file cannot be read or parsed as YAML."""


SHOWN_PROBLEMS = 100  # a ValidationError's message lists this many; ``problems`` holds them all


class ValidationError(PipelineError):
    """The pipeline breaks one or more of magnus' rules; carries every problem found."""

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = list(problems)
        count = len(self.problems)
        if count == 1:  # one problem, one line
            super().__init__(f"invalid pipeline: {self.problems[0]}")
            return
        head = f"invalid pipeline ({count:,} problems)"
        lines = [f"  {p}" for p in self.problems[:SHOWN_PROBLEMS]]
        if count > SHOWN_PROBLEMS:  # a step repeated by aliases repeats its problem too
            lines.append(f"  … and {count - SHOWN_PROBLEMS:,} more")
        super().__init__(head + ":\n" + "\n".join(lines))

    def __reduce__(self) -> tuple[type, tuple[list[Problem]]]:  # type: ignore[override]
        return (self.__class__, (self.problems,))


class ParameterError(PipelineError):
    """A parameters file or a --param value is malformed."""


class ExecutionError(PipelineError):
    """A run could not start or continue for a reason outside any one task."""
