"""Exceptions a handler raises to answer a member instead of crashing.

The router maps them to replies by walking the exception's MRO, so a feature can
subclass them and still get the right template.
"""

from __future__ import annotations

from typing import Any


class HandlerError(Exception):
    """Base of all errors that become a friendly reply rendered from `template`."""

    template = "errors/generic.j2"

    def __init__(self, template: str | None = None, **values: Any) -> None:
        super().__init__(template or self.template)
        if template:
            self.template = template
        self.values = values


class UserInputError(HandlerError):
    """The member's input can't be used; the reply says what is wrong and shows usage."""

    template = "errors/user_input.j2"


class BadArgument(UserInputError):
    """One argument failed to parse. `problem` names a case in `errors/bad_argument.j2`."""

    template = "errors/bad_argument.j2"

    def __init__(self, problem: str, **values: Any) -> None:
        super().__init__(None, problem=problem, **values)
        self.problem = problem

    def __str__(self) -> str:
        details = ", ".join(f"{k}={v!r}" for k, v in self.values.items() if k != "problem")
        return f"{self.problem}({details})"


class PermissionDenied(HandlerError):
    """The member lacks the role a command needs (checked with the platform)."""

    template = "errors/forbidden.j2"


class NotFound(UserInputError):
    """An id the member gave names nothing in this community."""

    template = "errors/not_found.j2"
