"""The `/forgetme` confirmation buttons: a signed token only the asking member can use.

The token carries its expiry and an HMAC of (community, member, expiry) under an install
key, so nothing needs storing: any instance, before or after a restart, can check that the
press comes from the member who asked, in the community they asked in, within 10 minutes.
It fits Telegram's 64-byte button data with room to spare.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from enum import StrEnum

FORGET_PREFIX = "privacy:forget:"
KEEP_PREFIX = "privacy:keep:"
TOKEN_TTL = timedelta(minutes=10)
SECRET_NAME = "privacy-forget"
_MAC_CHARS = 24
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class TokenCheck(StrEnum):
    OK = "ok"
    NOT_YOURS = "not_yours"  # another member pressed, or the data was tampered with
    EXPIRED = "expired"


def _base36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
        if number == 0:
            return out


def _mac(key: bytes, community_id: int, user_id: str, stamp: str) -> str:
    message = f"forget:{community_id}:{user_id}:{stamp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def make_token(key: bytes, community_id: int, user_id: str, now: datetime) -> str:
    """A token for the member's buttons, valid for `TOKEN_TTL` from `now`."""
    stamp = _base36(int((now + TOKEN_TTL).timestamp()))
    return f"{stamp}.{_mac(key, community_id, user_id, stamp)}"


def check_token(
    key: bytes, community_id: int, user_id: str, token: str, now: datetime
) -> TokenCheck:
    """Whether `user_id` may use `token` in this community now."""
    stamp, _, mac = token.partition(".")
    if not stamp or len(stamp) > 13 or any(c not in _DIGITS for c in stamp):
        return TokenCheck.NOT_YOURS
    if not hmac.compare_digest(mac, _mac(key, community_id, user_id, stamp)):
        return TokenCheck.NOT_YOURS
    if now >= datetime.fromtimestamp(int(stamp, 36), UTC):
        return TokenCheck.EXPIRED
    return TokenCheck.OK
