"""Synthetic FHIR patients: valid R4 bundles, deterministic, varied, clinically consistent."""

import datetime
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class

from patients.synthetic import generate_bundle, generate_bundles, summarize

TODAY = datetime.date(2026, 11, 26)
Bundle = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"


@pytest.fixture(scope="module")
def bundles() -> list[Bundle]:
    return list(generate_bundles(200, seed=0, today=TODAY))


def resources(bundle: Bundle, kind: str | None = None) -> Iterator[dict[str, Any]]:
    for entry in bundle["entry"]:
        if kind is None or entry["resource"]["resourceType"] == kind:
            yield entry["resource"]


def loinc(resource: dict[str, Any]) -> str | None:
    for coding in resource["code"].get("coding", []):
        if coding["system"] == "http://loinc.org":
            return str(coding["code"])
    return None


def observations(bundle: Bundle, code: str) -> list[dict[str, Any]]:
    return [r for r in resources(bundle, "Observation") if loinc(r) == code]


def condition_codes(bundle: Bundle) -> set[str]:
    return {c["code"]["coding"][0]["code"] for c in resources(bundle, "Condition")}


def primary(bundle: Bundle) -> dict[str, Any]:
    (condition,) = (
        c
        for c in resources(bundle, "Condition")
        if any("primary-cancer" in p for p in c.get("meta", {}).get("profile", []))
    )
    return condition


def morphology(bundle: Bundle) -> str | None:
    for extension in primary(bundle).get("extension", []):
        for coding in extension["valueCodeableConcept"]["coding"]:
            if coding["system"] == ICDO3:
                return str(coding["code"])
    return None


def category(bundle: Bundle, code: str) -> str | None:
    found = observations(bundle, code)
    return found[0]["valueCodeableConcept"]["coding"][0]["code"] if found else None


def rxnorm(statement: dict[str, Any]) -> str | None:
    for coding in statement["medicationCodeableConcept"].get("coding", []):
        if coding["system"] == RXNORM:
            return str(coding["code"])
    return None


def daily_mg(statement: dict[str, Any]) -> float:
    dosage = statement["dosage"][0]
    repeat = dosage["timing"]["repeat"]
    assert repeat["period"] == 1
    assert repeat["periodUnit"] == "d"
    dose = dosage["doseAndRate"][0]["doseQuantity"]
    assert dose["code"] == "mg"
    return float(dose["value"]) * repeat["frequency"]


def test_every_bundle_and_resource_validates_as_r4b(bundles: list[Bundle]) -> None:
    bundle_model = get_fhir_model_class("Bundle")
    for bundle in bundles:
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "collection"
        bundle_model.model_validate(bundle)
        for resource in resources(bundle):
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_entries_reference_the_patient_and_each_other(bundles: list[Bundle]) -> None:
    seen: set[str] = set()
    for bundle in bundles:
        urls = [entry["fullUrl"] for entry in bundle["entry"]]
        assert all(url.startswith("urn:uuid:") for url in urls)
        assert seen.isdisjoint(urls), "fullUrls are unique across bundles"
        seen.update(urls)
        (patient,) = resources(bundle, "Patient")
        assert bundle["entry"][0]["resource"] is patient
        patient_url = bundle["entry"][0]["fullUrl"]
        for resource in list(resources(bundle))[1:]:
            assert resource["subject"] == {"reference": patient_url}
        references = {
            ref["reference"]
            for resource in resources(bundle)
            for key in ("focus", "reasonReference")
            for ref in resource.get(key, [])
        }
        assert references <= set(urls)


def test_patients_have_mrn_identity_and_address(bundles: list[Bundle]) -> None:
    mrns = []
    countries = set()
    for bundle in bundles:
        (patient,) = resources(bundle, "Patient")
        mrns.append(patient["identifier"][0]["value"])
        assert patient["gender"] in ("male", "female")
        (address,) = patient["address"]
        assert address["postalCode"]
        countries.add(address["country"])
    assert mrns == [f"DEMO-{i:06d}" for i in range(1, 201)]
    assert "US" in countries
    assert countries - {"US"}, "a few patients live outside the US"


def test_same_seed_same_bundles_other_seed_other_bundles() -> None:
    first = list(generate_bundles(10, seed=42, today=TODAY))
    assert first == list(generate_bundles(10, seed=42, today=TODAY))
    assert json.dumps(first) != json.dumps(list(generate_bundles(10, seed=43, today=TODAY)))
    other_site = list(generate_bundles(2, seed=42, today=TODAY, site_code="MSK"))
    assert other_site[0]["entry"][0]["resource"]["identifier"][0]["value"] == "MSK-000001"


def test_only_the_dates_depend_on_today() -> None:
    def undated(today: datetime.date) -> str:
        text = json.dumps(list(generate_bundles(40, seed=9, today=today)))
        return re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", text)

    assert undated(TODAY) == undated(datetime.date(2028, 2, 29))


def test_site_code_must_be_usable_in_file_names_and_ids() -> None:
    import random

    with pytest.raises(ValueError, match="site code"):
        generate_bundle(random.Random(1), 1, site_code="a b/c", today=TODAY)


@pytest.mark.parametrize(
    "today",
    [TODAY, datetime.date(2028, 2, 29), datetime.date(2027, 3, 1), datetime.date(2026, 12, 31)],
)
def test_ages_and_dates_are_valid_and_relative_to_today(today: datetime.date) -> None:
    for bundle in generate_bundles(60, seed=5, today=today):
        (patient,) = resources(bundle, "Patient")
        birth = datetime.date.fromisoformat(patient["birthDate"])
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        assert 30 <= age <= 88
        onset = datetime.date.fromisoformat(primary(bundle)["onsetDateTime"])
        assert 0 < (today - onset).days <= 92, "diagnosed within the last 3 months"
        for lab in observations(bundle, "751-8"):
            assert 14 <= (today - datetime.date.fromisoformat(lab["effectiveDateTime"])).days <= 28
        for resource in resources(bundle):
            for key in ("effectiveDateTime", "onsetDateTime", "performedDateTime", "authoredOn"):
                if key in resource:
                    assert datetime.date.fromisoformat(resource[key]) <= today, (key, resource)
            for key in ("effectivePeriod", "performedPeriod"):
                for day in resource.get(key, {}).values():
                    assert datetime.date.fromisoformat(day) <= today
            if resource["resourceType"] == "ServiceRequest":
                assert datetime.date.fromisoformat(resource["occurrenceDateTime"]) > today


def m1_with(code: str) -> Callable[[Bundle], bool]:
    return lambda b: category(b, "21907-1") == "cM1" and code in condition_codes(b)


def has_quantity(code: str, unit: str, *, uln: bool = False) -> Callable[[Bundle], bool]:
    def check(bundle: Bundle) -> bool:
        for obs in observations(bundle, code):
            if obs["valueQuantity"]["code"] != unit:
                continue
            if not uln or obs.get("referenceRange", [{}])[0].get("high", {}).get("code") == unit:
                return True
        return False

    return check


def karnofsky_only(bundle: Bundle) -> bool:
    return bool(observations(bundle, "89243-0")) and not observations(bundle, "89247-1")


def no_performance_status(bundle: Bundle) -> bool:
    return not observations(bundle, "89243-0") and not observations(bundle, "89247-1")


def gastrectomy(kind: str, **fields: str) -> Callable[[Bundle], bool]:
    return lambda b: any(
        "gastrectomy" in r["code"]["text"].lower() and all(r[k] == v for k, v in fields.items())
        for r in resources(b, kind)
    )


def prednisone_over_10(bundle: Bundle) -> bool:
    return any(
        rxnorm(s) == "8640" and s["status"] == "active" and daily_mg(s) > 10
        for s in resources(bundle, "MedicationStatement")
    )


def prior_anti_pd1(bundle: Bundle) -> bool:
    return any(
        rxnorm(s) in ("1547545", "1597876") for s in resources(bundle, "MedicationStatement")
    )


def value_text(code: str, text: str) -> Callable[[Bundle], bool]:
    return lambda b: any(o["valueCodeableConcept"]["text"] == text for o in observations(b, code))


VARIETY: dict[str, Callable[[Bundle], bool]] = {
    "M1 with peritoneal metastasis (C78.6)": m1_with("C78.6"),
    "M1 with liver metastasis (C78.7)": m1_with("C78.7"),
    "squamous cell carcinoma": lambda b: morphology(b) == "8070/3",
    "GIST": lambda b: morphology(b) == "8936/3",
    "signet ring cell": lambda b: morphology(b) == "8490/3",
    "Karnofsky instead of ECOG": karnofsky_only,
    "creatinine in umol/L with ULN": has_quantity("14682-9", "umol/L", uln=True),
    "bilirubin in umol/L with ULN": has_quantity("14631-6", "umol/L", uln=True),
    "haemoglobin in g/L": has_quantity("718-7", "g/L"),
    "haemoglobin in mmol/L": has_quantity("718-7", "mmol/L"),
    "ANC in /mm3": has_quantity("751-8", "/mm3"),
    "ANC in 10*9/L": has_quantity("751-8", "10*9/L"),
    "weight in pounds": has_quantity("29463-7", "[lb_av]"),
    "missing ECOG": no_performance_status,
    "planned gastrectomy": gastrectomy("ServiceRequest", intent="plan"),
    "completed gastrectomy": gastrectomy("Procedure", status="completed"),
    "prednisone > 10 mg/day": prednisone_over_10,
    "prior anti-PD-1": prior_anti_pd1,
    "MSI-H": value_text("81695-9", "MSI-H"),
    "HER2 IHC 3+": value_text("18474-7", "3+"),
    "PD-L1 CPS": lambda b: any("PD-L1" in o["code"]["text"] for o in resources(b, "Observation")),
    "type 1 diabetes": lambda b: "E10.9" in condition_codes(b),
    "pregnancy status": lambda b: bool(observations(b, "82810-3")),
    "GEJ with Siewert type": lambda b: "Siewert type" in primary(b)["code"]["text"],
}


def test_the_mix_is_varied(bundles: list[Bundle]) -> None:
    absent = [name for name, check in VARIETY.items() if not any(check(b) for b in bundles)]
    assert absent == []


def test_one_profile_in_five_is_incomplete(bundles: list[Bundle]) -> None:
    summaries = [summarize(b) for b in bundles]
    assert sum(s.incomplete for s in summaries) == 40
    missing = {item for s in summaries for item in s.missing}
    assert {"performance status", "cN", "labs", "histology"} <= missing


# AJCC 8th edition clinical (cTNM) stage groups, N0..N3 per T, for M0 (M1 is IVB).
STAGE_TABLES = {
    "stomach": {
        "cT1": ("I", "IIA", "IIA", "IIA"),
        "cT2": ("I", "IIA", "IIA", "IIA"),
        "cT3": ("IIB", "III", "III", "III"),
        "cT4a": ("IIB", "III", "III", "III"),
        "cT4b": ("IVA", "IVA", "IVA", "IVA"),
    },
    "esophagus-adenocarcinoma": {
        "cT1": ("I", "IIA", "IVA", "IVA"),
        "cT2": ("IIB", "III", "IVA", "IVA"),
        "cT3": ("III", "III", "IVA", "IVA"),
        "cT4a": ("IVA", "IVA", "IVA", "IVA"),
        "cT4b": ("IVA", "IVA", "IVA", "IVA"),
    },
    "esophagus-squamous": {
        "cT1": ("I", "I", "III", "IVA"),
        "cT2": ("II", "II", "III", "IVA"),
        "cT3": ("II", "III", "III", "IVA"),
        "cT4a": ("IVA", "IVA", "IVA", "IVA"),
        "cT4b": ("IVA", "IVA", "IVA", "IVA"),
    },
}


def possible_groups(scheme: str, t: str | None, n: str | None, m: str | None) -> set[str]:
    groups = set()
    for tt, row in STAGE_TABLES[scheme].items():
        for nn, group in zip(("cN0", "cN1", "cN2", "cN3"), row, strict=True):
            if t in (None, tt) and n in (None, "cNX", nn):
                if m in (None, "cM0"):
                    groups.add(group)
                if m in (None, "cM1"):
                    groups.add("IVB")
    return groups


def schemes(bundle: Bundle) -> list[str]:
    condition = primary(bundle)
    code = condition["code"]["coding"][0]["code"]
    text = condition["code"]["text"]
    if "Siewert type III" in text:
        return ["stomach"]
    if "Siewert type" in text:
        return ["esophagus-adenocarcinoma"]
    if code.startswith("C16"):
        return ["stomach"]
    histology = morphology(bundle)
    if histology == "8070/3":
        return ["esophagus-squamous"]
    if histology is None:
        return ["esophagus-adenocarcinoma", "esophagus-squamous"]
    return ["esophagus-adenocarcinoma"]


def test_stage_groups_agree_with_ct_cn_cm(bundles: list[Bundle]) -> None:
    checked = 0
    for bundle in bundles:
        group = category(bundle, "21908-9")
        if group is None:
            continue
        t, n, m = (category(bundle, code) for code in ("21905-5", "21906-3", "21907-1"))
        assert morphology(bundle) not in ("8936/3", "8240/3"), "no AJCC group for GIST / NET"
        # Where T, N or M is unknown, the group given must be the only one possible.
        options = [possible_groups(scheme, t, n, m) for scheme in schemes(bundle)]
        assert any(groups == {group} for groups in options), (group, t, n, m, schemes(bundle))
        checked += 1
        if m == "cM1":
            assert condition_codes(bundle) & {"C78.6", "C78.7", "C78.00", "C79.51", "C79.60"}
    assert checked > 120


def test_metastases_only_with_m1(bundles: list[Bundle]) -> None:
    for bundle in bundles:
        metastatic = any(c[:3] in ("C77", "C78", "C79") for c in condition_codes(bundle))
        m = category(bundle, "21907-1")
        if m is not None:
            assert metastatic == (m == "cM1")


def test_command_writes_one_file_per_patient(tmp_path: Path) -> None:
    out = io.StringIO()
    target = tmp_path / "new" / "folder"
    call_command("generate_patients", count=7, seed=3, site="SITE1", output=target, stdout=out)
    files = sorted(p.name for p in target.iterdir())
    assert files == [f"SITE1-{i:06d}.json" for i in range(1, 8)]
    expected = list(generate_bundles(7, seed=3, today=timezone.localdate(), site_code="SITE1"))
    written = [json.loads((target / name).read_text(encoding="utf-8")) for name in files]
    assert written == expected
    assert out.getvalue().count("\n") == 1
    assert out.getvalue().startswith(f"Wrote 7 synthetic FHIR bundle(s) to {target}")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"count": 0}, "--count"), ({"count": 2, "site": "no/slash"}, "--site")],
)
def test_command_refuses_bad_options(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("generate_patients", output=tmp_path, **options)
    assert list(tmp_path.iterdir()) == []
