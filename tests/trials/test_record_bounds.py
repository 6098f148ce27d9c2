"""A registry value that is no coordinate, no person's age or no storable text is refused at
the edge.

A site ``geoPoint`` holding ``Infinity`` once broke every distance computed afterwards, and a
``maximumAge: "100000 Years"`` overflowed the age field: such a record is reported in its
SyncRun with its NCT id and reason and never stored; the rest of the page lands; and a value
that reached the database anyway never makes a distance raise.
"""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.trials.conftest import CTGOV_DATA
from trials.api import nearest_sites
from trials.ctgov.mapping import MalformedRecord, map_study
from trials.eligibility.geo import haversine_km
from trials.models import SyncRun, Trial, TrialSite

GOOD = "NCT00000102"


def recorded(nct_id: str = GOOD) -> dict[str, Any]:
    return json.loads((CTGOV_DATA / "v2" / f"{nct_id}.json").read_text())


def with_geo(lat: Any, lon: Any, nct_id: str = "NCT90000001") -> dict[str, Any]:
    study = copy.deepcopy(recorded())
    study["protocolSection"]["identificationModule"]["nctId"] = nct_id
    location = study["protocolSection"]["contactsLocationsModule"]["locations"][0]
    location["geoPoint"] = {"lat": lat, "lon": lon}
    return study


def with_age(maximum: str, nct_id: str = "NCT90000002") -> dict[str, Any]:
    study = copy.deepcopy(recorded())
    study["protocolSection"]["identificationModule"]["nctId"] = nct_id
    study["protocolSection"]["eligibilityModule"]["maximumAge"] = maximum
    return study


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (math.inf, 10.0),
        (10.0, -math.inf),
        (math.nan, 10.0),
        (91.0, 10.0),
        (10.0, -180.5),
        (10**400, 10.0),  # an integer no float holds
    ],
)
def test_a_geopoint_that_is_no_coordinate_refuses_the_record(lat: Any, lon: Any) -> None:
    with pytest.raises(MalformedRecord, match="is not a coordinate"):
        map_study(with_geo(lat, lon))


@pytest.mark.parametrize("maximum", ["100000 Years", "1000 Years", "2000000 Hours"])
def test_an_age_no_person_has_refuses_the_record(maximum: str) -> None:
    with pytest.raises(MalformedRecord, match="is not a person's age"):
        map_study(with_age(maximum))


def test_edge_values_that_are_real_still_map() -> None:
    record = map_study(with_geo(-90, 180))
    assert (record.sites[0].latitude, record.sites[0].longitude) == (-90.0, 180.0)
    assert map_study(with_age("99 Years")).maximum_age is not None
    assert map_study(with_age("200 Years")).maximum_age is not None  # "no upper limit"
    assert map_study(with_age("72 Hours")).maximum_age is not None


@pytest.mark.django_db
def test_a_sync_lands_the_good_records_and_reports_the_bad_with_their_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "good.json").write_text(json.dumps(recorded()))
    # The stdlib writer (and reader) spell a non-finite float as Infinity.
    (tmp_path / "geo.json").write_text(json.dumps(with_geo(math.inf, 10.0)))
    (tmp_path / "age.json").write_text(json.dumps(with_age("100000 Years")))

    with pytest.raises(CommandError, match="Some records could not be imported"):
        call_command(
            "sync_trials", "--from", str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO()
        )

    assert list(Trial.objects.values_list("nct_id", flat=True)) == [GOOD]
    run = SyncRun.objects.latest()
    assert run.status != "running"
    messages = {error["record"]: error["message"] for error in run.errors}
    assert "is not a coordinate" in messages["NCT90000001"]
    assert "is not a person's age" in messages["NCT90000002"]
    # The trials table stays readable: the export reads every row.
    call_command("export_trials", stdout=(out := io.StringIO()))
    assert GOOD in out.getvalue()


@pytest.mark.django_db
def test_a_stored_point_that_is_none_is_never_an_error() -> None:
    assert haversine_km(math.inf, 0.0, 10.0, 10.0) == math.inf
    assert haversine_km(10.0, 10.0, math.nan, 0.0) == math.inf
    call_command("sync_trials", "--from", str(CTGOV_DATA / "v2" / f"{GOOD}.json"), "--no-progress")
    trial = Trial.objects.get(nct_id=GOOD)
    site = TrialSite.objects.filter(trial=trial).first()
    assert site is not None
    # A row written before the edge refused such values (or by hand).
    TrialSite.objects.filter(pk=site.pk).update(latitude=math.inf, longitude=10.0)
    found = nearest_sites(40.0, -74.0, 20000.0)
    assert found.get(trial.pk, 0.0) != math.inf


@pytest.mark.django_db
def test_a_record_the_database_refuses_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value the database refuses (an overflow the edge did not foresee) rolls back
    the batch; each record is then written on its own, and only the refused one is lost."""
    from django.db import DataError

    from trials import services

    assign = services._assign

    def refusing(trial: Trial, *args: Any, **kwargs: Any) -> None:
        assign(trial, *args, **kwargs)
        if trial.nct_id == "NCT90000003":
            raise DataError("numeric field overflow")

    monkeypatch.setattr(services, "_assign", refusing)
    refused = copy.deepcopy(recorded())
    refused["protocolSection"]["identificationModule"]["nctId"] = "NCT90000003"
    (tmp_path / "good.json").write_text(json.dumps(recorded()))
    (tmp_path / "refused.json").write_text(json.dumps(refused))

    with pytest.raises(CommandError, match="Some records could not be imported"):
        call_command(
            "sync_trials", "--from", str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO()
        )

    assert list(Trial.objects.values_list("nct_id", flat=True)) == [GOOD]
    run = SyncRun.objects.latest()
    assert (run.created, run.failed) == (1, 1)
    assert run.status != "running"
    assert "could not be stored (DataError: numeric field overflow)" in run.errors[0]["message"]


def _mangled(nct_id: str, where: tuple[str, ...], value: Any) -> dict[str, Any]:
    study = copy.deepcopy(recorded())
    study["protocolSection"]["identificationModule"]["nctId"] = nct_id
    node = study
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    return study


@pytest.mark.parametrize(
    ("where", "value", "reason"),
    [
        (("protocolSection", "eligibilityModule", "eligibilityCriteria"), "Age\x00 18", "NUL"),
        (("protocolSection", "identificationModule", "briefTitle"), "A \ud83d trial", "surrogate"),
        (("protocolSection", "designModule", "enrollmentInfo", "count"), math.inf, "not finite"),
        (("protocolSection", "conditionsModule", "keywords"), [[[[[[[[]]]]]]]] * 1, None),
    ],
)
def test_text_or_numbers_no_database_holds_refuse_the_record(
    where: tuple[str, ...], value: Any, reason: str | None
) -> None:
    study = _mangled("NCT90000004", where, value)
    if reason is None:  # not text where text belongs: the reader's own type check
        with pytest.raises(MalformedRecord, match="should be a list of text"):
            map_study(study)
        return
    with pytest.raises(MalformedRecord, match=reason):
        map_study(study)


def test_a_record_nested_past_the_limit_is_refused() -> None:
    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    study = _mangled("NCT90000005", ("protocolSection", "oddModule"), deep)
    with pytest.raises(MalformedRecord, match="nested more than"):
        map_study(study)
