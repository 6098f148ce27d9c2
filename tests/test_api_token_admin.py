"""API keys in the admin: superusers see and revoke them; nobody sees a key; coordinators see
nothing of them."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from patients.models import ApiToken

URL = "/admin/patients/apitoken/"
pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_superuser_lists_keys_without_ever_seeing_one_and_revokes_them() -> None:
    root = User.objects.create_superuser("root", password="x" * 16)
    token, key = ApiToken.issue(root, "EHR bridge")

    page = signed_in(root).get(URL).content.decode()
    assert token.prefix in page
    assert "EHR bridge" in page
    assert key not in page
    assert token.key_hash not in page

    answer = signed_in(root).post(URL, {"action": "revoke", "_selected_action": [token.pk]})

    assert answer.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiToken.objects.filter(pk=token.pk).exists()  # kept, not deleted


def test_a_coordinator_sees_no_api_keys() -> None:
    coordinator = User.objects.create_user("lena", password="x" * 16, is_staff=True)

    assert signed_in(coordinator).get(URL).status_code == 403
    assert "apitoken" not in signed_in(coordinator).get("/admin/").content.decode()
