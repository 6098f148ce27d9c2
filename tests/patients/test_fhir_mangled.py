"""Mangled and generated bundles never raise past the importer, and never half-write."""

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import models
from patients.fhir import BundleError, read_bundle
from patients.services import ProfileRejected, patient_upsert
from tests.patients.conftest import example

BUNDLES = {name: example(name) for name in ("EX1", "EX2", "EX3")}
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=400),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mangled_bundles(draw: st.DrawFn) -> Any:
    document = copy.deepcopy(BUNDLES[draw(st.sampled_from(sorted(BUNDLES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        candidates = paths(document)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = draw(JUNK)
    return document


def counts() -> dict[str, int]:
    tallies = {"Patient": models.Patient.objects.count()}
    tallies.update({model.__name__: model._default_manager.count() for model in models.FACT_MODELS})
    return tallies


def import_or_refuse(document: Any) -> None:
    """What the import command does for one document; only refusals may come out."""
    before = counts()
    try:
        profile = read_bundle(document, origin="mangled.json")
        result = patient_upsert(profile, source=models.Source.FHIR)
    except (BundleError, ProfileRejected) as refusal:
        reason = str(refusal)
    else:
        reason = ""
    if reason:
        assert counts() == before
        return
    assert result.patient is not None
    for problem in result.problems:
        assert problem.where
        assert problem.message
    assert "Traceback" not in " ".join(str(p) for p in result.problems)


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=mangled_bundles())
def test_mangled_bundles_are_refused_or_imported_with_problems(document: Any) -> None:
    import_or_refuse(document)


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    document=st.recursive(
        JUNK,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(
                st.sampled_from(["resourceType", "entry", "resource", "fullUrl", "code", "x"]),
                children,
                max_size=4,
            ),
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_raises_past_the_importer(document: Any) -> None:
    import_or_refuse(document)
