"""Sessions: Django's database sessions, with a shorter life for anonymous ones.

A session without a signed-in user holds a public-form visitor's answers (age, sex, HIV,
hepatitis, pregnancy, where they live). The form's privacy notice promises they are kept only
while the visitor uses the page, so such a session ends ``PRESCREEN_SESSION_IDLE_TIMEOUT``
seconds after its last request, however long staff sessions last (``SESSION_COOKIE_AGE``,
unchanged for signed-in users). Both stay browser-session cookies, gone when the browser
closes; ``request.session.set_expiry()`` would instead give the visitor a cookie that outlives
the browser on a shared computer. Expired rows are deleted by the hourly purge
(``patients.tasks.clear_expired_sessions_task``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import SESSION_KEY as USER_KEY
from django.contrib.sessions.backends import db

DEFAULT_ANONYMOUS_IDLE_SECONDS = 30 * 60


def anonymous_idle_seconds() -> int:
    return int(getattr(settings, "PRESCREEN_SESSION_IDLE_TIMEOUT", DEFAULT_ANONYMOUS_IDLE_SECONDS))


class SessionStore(db.SessionStore):
    def get_session_cookie_age(self) -> int:
        if USER_KEY in self:
            return int(settings.SESSION_COOKIE_AGE)
        return anonymous_idle_seconds()
