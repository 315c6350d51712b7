"""Post texts: managers' templates rendered in a sandbox that can only fill in values.

A post body is Jinja2 (`Good morning {{ community }}! We are {{ member_count }}.`). Two
walls keep it harmless: the parsed template may hold only output, constants, the known
variables, a few pure filters, `if` and simple arithmetic — no attribute or item access, no
calls, loops, imports or macros — so rendering time is bounded by the template's size and
`''.__class__.__mro__` is refused before anything runs; and it renders in Jinja2's
immutable sandbox anyway. Values are escaped for the neutral Markdown like every reply.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from handlers.core.render import finalize_value

MAX_BODY = 3500
COMPILED_KEPT = 512  # compiled post bodies kept (all dropped when full)
# What a post may say; `commands.toml` and the `/post` help list them too.
VARIABLES = (
    "community",
    "chat",
    "date",
    "time",
    "weekday",
    "member_count",
    "messages_yesterday",
    "active_yesterday",
)
FILTERS = ("upper", "lower", "title", "capitalize", "trim", "default", "number", "round", "abs")
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Filter,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
)


class PostTextError(Exception):
    """A post text that can't be used; `problem` names a case in `posts/errors.j2`."""

    def __init__(self, problem: str, **values: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.values = values


def _number(value: int | float) -> str:
    return f"{round(value):,}"


def _numbers_only(op: Any) -> Any:
    def checked(left: Any, right: Any) -> Any:
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
            raise SecurityError("arithmetic works on numbers only")
        return op(left, right)

    return checked


class _PostSandbox(ImmutableSandboxedEnvironment):
    # `"x" * 10**9` would allocate a gigabyte: multiplication is checked at run time.
    intercepted_binops = frozenset({"*", "/", "//", "%"})
    _binops: ClassVar[dict[str, Any]] = {
        "*": _numbers_only(operator.mul),
        "/": _numbers_only(operator.truediv),
        "//": _numbers_only(operator.floordiv),
        "%": _numbers_only(operator.mod),
    }

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return self._binops[operator](left, right)


@dataclass(frozen=True, slots=True)
class PostTextRenderer:
    """Checks and renders post bodies."""

    env: _PostSandbox
    # Compiled bodies by source, checked already: a recurring post compiles once.
    compiled: dict[str, Template] = field(default_factory=dict)

    @classmethod
    def create(cls) -> PostTextRenderer:
        env = _PostSandbox(undefined=StrictUndefined, finalize=finalize_value, autoescape=False)
        kept = {name: env.filters[name] for name in FILTERS if name in env.filters}
        env.filters.clear()
        env.filters.update(kept, d=kept["default"], number=_number)
        env.globals.clear()
        return cls(env)

    def check(self, source: str) -> None:
        """Refuse a body that is too long, doesn't parse, or uses anything but the variables."""
        self._checked(source)

    def _checked(self, source: str) -> nodes.Template:
        """`check`, giving back the parsed tree (rendering compiles it: parsed once)."""
        if not source.strip():
            raise PostTextError("empty_text")
        if len(source) > MAX_BODY:
            raise PostTextError("text_too_long", limit=MAX_BODY)
        try:
            tree = self.env.parse(source)
        except TemplateSyntaxError as exc:
            raise PostTextError("syntax", line=exc.lineno, message=exc.message or "") from None
        for node in tree.find_all(nodes.Node):
            if not isinstance(node, _ALLOWED_NODES):
                raise PostTextError("not_allowed", what=_describe(node))
            if isinstance(node, nodes.Name) and node.name not in VARIABLES:
                raise PostTextError("unknown_variable", name=node.name, known=", ".join(VARIABLES))
            if isinstance(node, nodes.Filter) and node.name not in (*FILTERS, "d"):
                raise PostTextError("unknown_filter", name=node.name, known=", ".join(FILTERS))
            if (
                isinstance(node, nodes.Const)
                and isinstance(node.value, str | bytes)
                and len(node.value) > MAX_BODY
            ):
                raise PostTextError("text_too_long", limit=MAX_BODY)
        return tree

    def render(self, source: str, values: Mapping[str, Any], *, limit: int) -> str:
        """The body with `values` filled in; raises PostTextError, never anything else."""
        template = self.compiled.get(source)
        try:
            if template is None:
                template = self.env.from_string(self._checked(source))
                if len(self.compiled) >= COMPILED_KEPT:
                    self.compiled.clear()
                self.compiled[source] = template
            text = template.render(**dict(values)).strip()
        except SecurityError:
            raise PostTextError("not_allowed", what="unsafe operation") from None
        except UndefinedError as exc:
            raise PostTextError(
                "unknown_variable", name=str(exc), known=", ".join(VARIABLES)
            ) from None
        except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
            raise PostTextError("render_failed", message=type(exc).__name__) from None
        if not text:
            raise PostTextError("empty_text")
        if len(text) > limit:
            raise PostTextError("rendered_too_long", length=len(text), limit=limit)
        return text


def _describe(node: nodes.Node) -> str:
    names = {
        nodes.Getattr: "attribute access (.)",
        nodes.Getitem: "item access ([])",
        nodes.Call: "function calls",
        nodes.For: "loops",
        nodes.Macro: "macros",
        nodes.Include: "include",
        nodes.Import: "import",
        nodes.FromImport: "import",
        nodes.Extends: "extends",
        nodes.Assign: "set",
        nodes.AssignBlock: "set",
        nodes.Pow: "powers (**)",
    }
    for kind, label in names.items():
        if isinstance(node, kind):
            return label
    return type(node).__name__.lower()
