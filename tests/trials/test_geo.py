"""Offline geocoding of patients and trial sites (trials.eligibility.geo)."""

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trials.eligibility import geo
from trials.eligibility.geo import Place, haversine_km, km_to_miles, locate, normalize_country

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)
NEW_YORK_10021 = (40.77, -73.96)


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("geo lookups must not touch the network")


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """Every test here runs with sockets refused, and the data is loaded under that rule."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket.socket, "connect_ex", _no_network)
        patch.setattr(socket, "getaddrinfo", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        geo.clear_caches()
        yield


def km_from(place: Place | None, point: tuple[float, float]) -> float:
    assert place is not None
    return haversine_km(place.latitude, place.longitude, *point)


def test_us_zip_code() -> None:
    place = locate(country="US", postal_code="10021")
    assert place is not None
    assert place.precision == "postal_code"
    assert km_from(place, NEW_YORK_10021) < 5


@pytest.mark.parametrize("postal_code", ["10021-1234", "  10021 ", "100211234", " 10021 - 1234"])
def test_us_zip_code_spellings(postal_code: str) -> None:
    assert locate(country="US", postal_code=postal_code) == locate(
        country="US", postal_code="10021"
    )


@pytest.mark.parametrize("country", ["United States", "United States of America", "USA", "us"])
def test_us_country_spellings(country: str) -> None:
    place = locate(country=country, postal_code="10021")
    assert place is not None
    assert place.precision == "postal_code"


def test_puerto_rico_zip_code() -> None:
    place = locate(country="Puerto Rico", postal_code="00901")
    assert place is not None
    assert place.precision == "postal_code"
    assert km_from(place, (18.47, -66.11)) < 5


def test_unknown_zip_code_falls_back_to_the_city() -> None:
    place = locate(country="US", postal_code="00000", city="New York")
    assert place is not None
    assert place.precision == "city"
    assert km_from(place, (40.71, -74.01)) < 5


def test_military_zip_code_has_no_point() -> None:
    # APO ZIP codes carry 0, 0 in the data: the country point is used instead.
    place = locate(country="US", postal_code="09001")
    assert place is not None
    assert place.precision == "country"


def test_postal_code_outside_the_us_is_not_a_zip_code() -> None:
    place = locate(country="FR", postal_code="10021", city="Paris")
    assert place is not None
    assert place.precision == "city"
    assert km_from(place, PARIS) < 5


@pytest.mark.parametrize("city", ["Paris", "paris", "  PARIS  "])
def test_city(city: str) -> None:
    place = locate(country="France", city=city)
    assert place is not None
    assert place.precision == "city"
    assert km_from(place, PARIS) < 5


@pytest.mark.parametrize("city", ["München", "münchen", "Munchen", "Muenchen", "Munich"])
def test_city_accents_and_alternate_names(city: str) -> None:
    place = locate(country="DE", city=city)
    assert place is not None
    assert place.precision == "city"
    assert km_from(place, (48.14, 11.58)) < 5


@pytest.mark.parametrize(
    ("country", "city", "point"),
    [
        ("France", "saint etienne", (45.43, 4.39)),
        ("France", "Saint-Étienne", (45.43, 4.39)),
        ("Poland", "Lodz", (51.77, 19.46)),
        ("Russian Federation", "Москва", (55.75, 37.62)),
        ("Japan", "東京", (35.69, 139.69)),
    ],
)
def test_city_spellings(country: str, city: str, point: tuple[float, float]) -> None:
    place = locate(country=country, city=city)
    assert place is not None
    assert place.precision == "city"
    assert km_from(place, point) < 10


def test_most_populous_city_wins_a_shared_name() -> None:
    # Several US cities are called Springfield; Springfield, Missouri is the largest.
    place = locate(country="US", city="Springfield")
    assert place is not None
    assert km_from(place, (37.22, -93.30)) < 10


def test_city_is_searched_within_its_country_only() -> None:
    place = locate(country="US", city="Paris")
    assert place is not None
    assert km_from(place, PARIS) > 5000


def test_country_only_is_its_capital() -> None:
    place = locate(country="Japan")
    assert place is not None
    assert place.precision == "country"
    assert km_from(place, (35.69, 139.69)) < 10


def test_unknown_city_falls_back_to_the_country() -> None:
    place = locate(country="JP", city="Atlantis")
    assert place == locate(country="Japan")


@pytest.mark.parametrize("country", ["Atlantis", "", "   ", "XX", "ZZZ"])
def test_unknown_country(country: str) -> None:
    assert locate(country=country) is None
    assert locate(country=country, postal_code="10021", city="Paris") is None


def test_known_country_without_any_city() -> None:
    assert normalize_country("Antarctica") == "AQ"
    assert locate(country="Antarctica") is None


@pytest.mark.parametrize(
    "odd",
    [None, 10021, 3.5, b"US", ["US"], "x" * 100_000, "\x00", "\ud800", "🇺🇸", "١٠٠٢١"],
)
def test_odd_input_never_raises(odd: Any) -> None:
    assert locate(country=odd) is None
    place = locate(country="US", postal_code=odd, city=odd)
    assert place is not None
    assert place.precision == "country"
    assert normalize_country(odd) is None


def test_non_ascii_digits_are_not_a_zip_code() -> None:
    # Arabic-Indic digits spell 10021; zipcodes would panic on them.
    place = locate(country="US", postal_code="١٠٠٢١")
    assert place is not None
    assert place.precision == "country"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    country=st.one_of(
        st.text(), st.sampled_from(["US", "FR", "Japan", "Puerto Rico", "Korea, Republic of"])
    ),
    postal_code=st.one_of(st.text(), st.from_regex(r"\d{5}(-\d{4})?", fullmatch=True)),
    city=st.one_of(st.text(), st.sampled_from(["New York", "Paris", "München", "東京"])),
)
def test_locate_never_raises(country: str, postal_code: str, city: str) -> None:
    place = locate(country=country, postal_code=postal_code, city=city)
    if place is not None:
        assert place.precision in {"postal_code", "city", "country"}
        assert -90 <= place.latitude <= 90
        assert -180 <= place.longitude <= 180


@given(text=st.text())
def test_normalize_country_never_raises(text: str) -> None:
    code = normalize_country(text)
    assert code is None or (len(code) == 2 and code.isupper())


def test_haversine() -> None:
    assert haversine_km(*PARIS, *LONDON) == pytest.approx(344, abs=2)
    assert haversine_km(*LONDON, *PARIS) == haversine_km(*PARIS, *LONDON)
    assert haversine_km(*PARIS, *PARIS) == 0
    # Antipodes: half the circumference, without a domain error from rounding.
    assert haversine_km(0, 0, 0, 180) == pytest.approx(20015.1, abs=0.1)
    assert haversine_km(10, 179.5, 10, -179.5) < 110


def test_km_to_miles() -> None:
    assert km_to_miles(1.609344) == pytest.approx(1)
    assert km_to_miles(344) == pytest.approx(213.75, abs=0.01)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("United States", "US"),
        ("United States of America", "US"),
        ("USA", "US"),
        ("us", "US"),
        ("China", "CN"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Taiwan", "TW"),
        ("Russian Federation", "RU"),
        ("Iran, Islamic Republic of", "IR"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("Netherlands", "NL"),
        ("Côte D'Ivoire", "CI"),
        ("Congo, The Democratic Republic of the", "CD"),
        ("Puerto Rico", "PR"),
        ("fr", "FR"),
        (" FRA ", "FR"),
        ("DEU", "DE"),
        ("Germany", "DE"),
    ],
)
def test_normalize_country(text: str, code: str) -> None:
    assert normalize_country(text) == code


def test_normalize_country_unknown() -> None:
    assert normalize_country("Atlantis") is None
    assert normalize_country("") is None
