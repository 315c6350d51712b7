"""The parts of the privacy feature that need no database: confirmation tokens, settings,
file names, and every reply template in both languages."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from handlers.core.render import LOCALES, Renderer
from handlers.privacy.commands import router
from handlers.privacy.confirm import (
    FORGET_PREFIX,
    TOKEN_TTL,
    TokenCheck,
    check_token,
    make_token,
)
from handlers.privacy.export import filename_for
from handlers.privacy.policy import (
    DEFAULT_RETENTION_DAYS,
    notice_enabled,
    retention_days,
    with_notice,
)
from storage.models import Community
from storage.privacy import Forgotten

KEY = bytes(range(32))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_token_is_for_one_member_in_one_community_for_ten_minutes():
    token = make_token(KEY, 7, "zed", NOW)
    assert len((FORGET_PREFIX + token).encode()) <= 64
    assert check_token(KEY, 7, "zed", token, NOW) is TokenCheck.OK
    assert check_token(KEY, 7, "zed", token, NOW + TOKEN_TTL - timedelta(seconds=1)).value == "ok"
    assert check_token(KEY, 7, "zed", token, NOW + TOKEN_TTL) is TokenCheck.EXPIRED
    assert check_token(KEY, 7, "ann", token, NOW) is TokenCheck.NOT_YOURS
    assert check_token(KEY, 8, "zed", token, NOW) is TokenCheck.NOT_YOURS
    assert check_token(bytes(32), 7, "zed", token, NOW) is TokenCheck.NOT_YOURS
    # A later expiry written into someone's token no longer matches its signature.
    _, _, mac = token.partition(".")
    assert check_token(KEY, 7, "zed", f"zzzzzz.{mac}", NOW) is TokenCheck.NOT_YOURS
    for garbage in ("", ".", "abc", "ZZ.123", "!!.x", "1" * 40 + ".x"):
        assert check_token(KEY, 7, "zed", garbage, NOW) is TokenCheck.NOT_YOURS


def test_retention_days_come_from_the_config_or_default_to_90():
    assert retention_days({}) == DEFAULT_RETENTION_DAYS == 90
    assert retention_days({"privacy": SimpleNamespace(retention_days=30)}) == 30
    assert retention_days({"privacy": {"retention": 45}}) == 45
    assert retention_days({"privacy": {"retention_days": 0}}) == 0  # kept for good
    for bad in (-1, True, "30", None):
        assert retention_days({"privacy": {"retention_days": bad}}) == 90


def test_the_notice_switch_lives_in_the_settings_without_touching_the_rest():
    settings = {"points": {"message": 2}}
    on = with_notice(settings, True)
    assert on == {"points": {"message": 2}, "privacy": {"notice": True}}
    assert settings == {"points": {"message": 2}}  # a new dict: the JSON column is saved
    assert notice_enabled(on) and not notice_enabled(settings) and not notice_enabled(None)
    assert with_notice(on, False) == settings
    assert not notice_enabled({"privacy": "yes"})


def test_export_file_names_are_safe():
    community = Community(platform="telegram", external_id="-100123")
    assert filename_for(community) == "commops-mydata-100123.json"
    community.external_id = "../../etc/passwd"
    assert filename_for(community) == "commops-mydata-etc_passwd.json"
    community.external_id = "///"
    assert filename_for(community) == "commops-mydata-community.json"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_reply_renders_in_both_languages(locale):
    renderer = Renderer()
    community = SimpleNamespace(title="Pixel Club", platform="telegram")
    common = {"community": community, "tz": UTC}
    outputs = [
        renderer.render("privacy/notice.j2", locale, days=90, notice_on=True, **common),
        renderer.render("privacy/notice.j2", locale, days=0, notice_on=False, **common),
        renderer.render("privacy/welcome.j2", locale, days=90, who="@zed", **common),
    ]
    for on in (True, False):
        for changed in (True, False):
            outputs.append(
                renderer.render("privacy/notice_switched.j2", locale, on=on, changed=changed)
            )
            outputs.append(renderer.render("privacy/optout.j2", locale, out=on, changed=changed))
    for platform in ("telegram", "discord", "console"):
        community.platform = platform
        for outcome in ("file", "sent", "closed", "failed"):
            outputs.append(
                renderer.render("privacy/mydata.j2", locale, outcome=outcome, size=1234, **common)
            )
    done = Forgotten("forgotten-1", deleted=Counter(points_ledger=3))
    nothing = Forgotten("forgotten-2")
    for outcome in ("ask", "kept", "not_yours", "expired", "closed_done", "closed_kept"):
        outputs.append(
            renderer.render("privacy/forget.j2", locale, outcome=outcome, minutes=10, **common)
        )
    for forgotten in (done, nothing):
        outputs.append(
            renderer.render("privacy/forget.j2", locale, outcome="done", done=forgotten, **common)
        )
    for which in ("confirm", "cancel"):
        outputs.append(renderer.render("privacy/button.j2", locale, which=which))
    for problem in ("group_only", "unknown_member"):
        outputs.append(
            renderer.render("privacy/errors.j2", locale, problem=problem, command="mydata")
        )
    assert all(text.strip() for text in outputs)
    if locale == "zh":
        # Natural Chinese, not the English left in by mistake.
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in outputs)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_privacy_command_has_help_in_both_languages(locale):
    catalog = Renderer().catalog(locale)["commands"]
    for spec in router.commands:
        assert catalog.get(spec.name, {}).get("help"), f"/{spec.name} has no {locale} help"
