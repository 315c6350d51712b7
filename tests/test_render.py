"""Templates: every locale has every template and every command's help line."""

from __future__ import annotations

import pytest

from handlers.core.markup import Safe
from handlers.core.render import LOCALES, Renderer, templates_root
from handlers.core.router import Dispatcher


def _template_names(locale: str) -> set[str]:
    root = templates_root() / locale
    return {str(p.relative_to(root)) for p in root.rglob("*.j2")}


def test_every_locale_has_the_same_templates():
    names = {locale: _template_names(locale) for locale in LOCALES}
    assert names["en"], "no templates found"
    for locale in LOCALES:
        assert names[locale] == names["en"], f"{locale} differs from en"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_command_has_help_in_every_locale(dispatcher: Dispatcher, locale: str):
    # The top-level catalog merged with each feature's own `<locale>/<feature>/commands.toml`.
    catalog = Renderer().catalog(locale)["commands"]
    for spec in dispatcher.visible_commands():
        assert catalog.get(spec.name, {}).get("help"), f"/{spec.name} has no {locale} help"


def test_values_are_escaped_unless_safe():
    renderer = Renderer()
    env = renderer.env
    template = env.from_string("{{ name }} and {{ markup }} and {{ n }}")
    out = template.render(name="*bold* [x](y)", markup=Safe("**ok**"), n=3)
    assert out == "\\*bold\\* \\[x\\]\\(y\\) and **ok** and 3"


def test_filters_format_numbers_signs_and_code():
    env = Renderer().env
    out = env.from_string(
        "{{ 12345 | number }} {{ 3 | signed }} {{ -2 | signed }} {{ 0 | signed }} "
        "{{ 'a`b' | code }}"
    ).render()
    assert out == "12,345 +3 −2 ±0 `a'b`"


def test_sandbox_refuses_unsafe_attribute_access():
    from jinja2.exceptions import SecurityError

    env = Renderer().env
    with pytest.raises(SecurityError):
        env.from_string("{{ ''.__class__.__mro__ }}").render()


def test_unknown_locale_falls_back_to_the_default():
    renderer = Renderer()
    assert renderer.render("errors/forbidden.j2", "xx", command="stats") == (
        "🔒 Only the community's managers can use /stats."
    )


@pytest.mark.parametrize("template", ["errors/bad_argument.j2", "errors/user_input.j2"])
@pytest.mark.parametrize("locale", LOCALES)
def test_usage_stands_in_its_own_paragraph(template, locale):
    text = Renderer().render(
        template, locale, problem="missing", label="x", message="Nope.", usage="/cmd <x>"
    )
    problem, usage = text.split("\n\n")
    assert problem.startswith("⚠️ ") and "`/cmd <x>`" in usage
