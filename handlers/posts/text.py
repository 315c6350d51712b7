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
PREPARED_KEPT = 512  # prepared post bodies kept (all dropped when full)
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


# A body that is only text and bare `{{ variable }}`s (most posts) is filled in directly:
# (text, None) or ("", variable name) in order. Jinja2 would print each variable as
# `str(finalize(value))` too; compiling the body to Python costs more than the whole send.
_Pieces = tuple[tuple[str, str | None], ...]


def _pieces(tree: nodes.Template) -> _Pieces | None:
    """The body as text and bare variables, or None when it uses anything more."""
    pieces: list[tuple[str, str | None]] = []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for child in output.nodes:
            if type(child) is nodes.TemplateData:
                pieces.append((child.data, None))
            elif type(child) is nodes.Name:
                pieces.append(("", child.name))
            else:
                return None
    return tuple(pieces)


@dataclass(frozen=True, slots=True)
class PreparedText:
    """A checked post body: the variables it uses, and how to fill them in."""

    names: frozenset[str]
    pieces: _Pieces | None
    template: Template | None

    def render(self, values: Mapping[str, Any], *, limit: int) -> str:
        """The body with `values` filled in; raises PostTextError, never anything else."""
        text = self._filled(values) if self.pieces is not None else self._rendered(values)
        if not text:
            raise PostTextError("empty_text")
        if len(text) > limit:
            raise PostTextError("rendered_too_long", length=len(text), limit=limit)
        return text

    def _filled(self, values: Mapping[str, Any]) -> str:
        assert self.pieces is not None
        parts: list[str] = []
        for literal, name in self.pieces:
            if name is None:
                parts.append(literal)
            elif name in values:
                parts.append(str(finalize_value(values[name])))
            else:  # as Jinja2's StrictUndefined says it
                raise PostTextError(
                    "unknown_variable", name=f"{name!r} is undefined", known=", ".join(VARIABLES)
                )
        return "".join(parts).strip()

    def _rendered(self, values: Mapping[str, Any]) -> str:
        assert self.template is not None
        try:
            return self.template.render(**dict(values)).strip()
        except SecurityError:
            raise PostTextError("not_allowed", what="unsafe operation") from None
        except UndefinedError as exc:
            raise PostTextError(
                "unknown_variable", name=str(exc), known=", ".join(VARIABLES)
            ) from None
        except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
            raise PostTextError("render_failed", message=type(exc).__name__) from None


@dataclass(frozen=True, slots=True)
class PostTextRenderer:
    """Checks and renders post bodies."""

    env: _PostSandbox
    # Prepared bodies by source, checked already: a recurring post is prepared once.
    prepared: dict[str, PreparedText] = field(default_factory=dict)

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

    def prepare(self, source: str) -> PreparedText:
        """`source` checked and made ready to render (kept for the next run of the same
        text); raises PostTextError, never anything else."""
        ready = self.prepared.get(source)
        if ready is not None:
            return ready
        tree = self._checked(source)
        names = frozenset(node.name for node in tree.find_all(nodes.Name))
        pieces = _pieces(tree)
        template = None
        if pieces is None:
            try:
                template = self.env.from_string(tree)
            except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
                raise PostTextError("render_failed", message=type(exc).__name__) from None
        ready = PreparedText(names, pieces, template)
        if len(self.prepared) >= PREPARED_KEPT:
            self.prepared.clear()
        self.prepared[source] = ready
        return ready

    def render(self, source: str, values: Mapping[str, Any], *, limit: int) -> str:
        """The body with `values` filled in; raises PostTextError, never anything else."""
        return self.prepare(source).render(values, limit=limit)


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
