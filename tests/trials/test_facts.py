"""Derived facts, computed in one place and explained (pure: no database)."""

import dataclasses
import datetime
from typing import Any

import pytest

from tests.trials.lab_results import lab
from trials.eligibility import facts as engine
from trials.eligibility.facts import PatientFacts, Staging, Surgery
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import (
    CancerSite,
    Histology,
    StagingError,
    ecog_from_karnofsky,
    parse_stage_group,
    parse_tnm,
    within,
)

TODAY = datetime.date(2026, 11, 26)


CANDIDATE = PatientFacts(
    external_id="P1",
    sex="female",
    birth_date=datetime.date(1963, 5, 1),
    primary_site=CancerSite.STOMACH,
    histology=Histology.SIGNET_RING,
    clinical={"T": Staging("T3"), "N": Staging("N1"), "M": Staging("M0")},
    ecog=1,
    surgeries=(Surgery("total_gastrectomy", "planned"),),
)


@pytest.mark.parametrize(
    ("birth", "on", "years"),
    [
        (datetime.date(1963, 11, 26), TODAY, 63),
        (datetime.date(1963, 11, 27), TODAY, 62),
        (datetime.date(1960, 2, 29), datetime.date(2026, 2, 28), 65),
        (datetime.date(1960, 2, 29), datetime.date(2026, 3, 1), 66),
    ],
)
def test_age_is_completed_years_on_the_day(
    birth: datetime.date, on: datetime.date, years: int
) -> None:
    assert engine.age(PatientFacts(birth_date=birth), on) == years


def test_age_unknown_without_birth_date() -> None:
    assert engine.age(PatientFacts(), TODAY) is None


def test_cockcroft_gault_explains_its_inputs() -> None:
    facts = PatientFacts(
        sex="female",
        birth_date=datetime.date(1963, 5, 1),
        labs={
            Analyte.WEIGHT: lab(Analyte.WEIGHT, 50, "kg"),
            Analyte.CREATININE: lab(Analyte.CREATININE, 168, "umol/L"),
        },
    )

    clearance = engine.creatinine_clearance(facts, TODAY)

    # (140 - 63) x 50 x 0.85 / (72 x 1.9005) = 23.9
    assert clearance.value == pytest.approx(23.9, abs=0.05)
    assert clearance.explanation == (
        "creatinine clearance 23.9 mL/min (Cockcroft-Gault: 63 y, 50 kg, female, "
        "creatinine 1.9 mg/dL)"
    )


def test_measured_clearance_wins_and_missing_inputs_are_named() -> None:
    measured = PatientFacts(
        labs={Analyte.CREATININE_CLEARANCE: lab(Analyte.CREATININE_CLEARANCE, 72, "mL/min")}
    )
    assert engine.creatinine_clearance(measured, TODAY).value == 72

    unknown = engine.creatinine_clearance(PatientFacts(sex="male"), TODAY)
    assert unknown.value is None
    assert unknown.explanation == (
        "creatinine clearance unknown (no age, no weight, no serum creatinine)"
    )


def test_uln_multiple_uses_the_results_own_range_else_a_named_default() -> None:
    own = PatientFacts(labs={Analyte.BILIRUBIN: lab(Analyte.BILIRUBIN, 34.2, "umol/L", 20.5)})
    default = PatientFacts(labs={Analyte.AST: lab(Analyte.AST, 100, "U/L")})

    with_range = engine.uln_multiple(own, Analyte.BILIRUBIN)
    with_default = engine.uln_multiple(default, Analyte.AST)

    assert with_range.value == pytest.approx(1.67, abs=0.01)
    assert "the result's reference range" in with_range.explanation
    assert with_default.value == 2.5
    assert "default; the result gives no reference range" in with_default.explanation
    assert engine.uln_multiple(PatientFacts(), Analyte.ALT).value is None


@pytest.mark.parametrize(
    ("karnofsky", "ecog"),
    [(100, 0), (90, 0), (80, 1), (70, 1), (60, 2), (50, 2), (40, 3), (30, 3), (20, 4), (0, 5)],
)
def test_karnofsky_maps_to_ecog(karnofsky: int, ecog: int) -> None:
    assert ecog_from_karnofsky(karnofsky) == ecog
    derived = engine.performance_status(PatientFacts(karnofsky=karnofsky))
    assert derived.value == ecog
    assert derived.explanation == f"ECOG {ecog} (from Karnofsky {karnofsky}%)"


def test_a_complete_resectable_profile_is_a_surgical_candidate() -> None:
    verdict = engine.surgical_candidate(CANDIDATE)

    assert verdict.value is True
    assert verdict.explanation == (
        "Surgical candidate: stomach signet ring cell carcinoma, cM0, cT3, ECOG 1, "
        "total gastrectomy planned, not yet done."
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"primary_site": CancerSite.ESOPHAGUS}, "primary site is esophagus"),
        ({"histology": Histology.SQUAMOUS}, "histology is squamous cell carcinoma"),
        ({"histology": Histology.GIST}, "histology is gastrointestinal stromal tumour"),
        ({"clinical": {"T": Staging("T3"), "M": Staging("M1")}}, "clinical M1"),
        ({"metastatic_sites": ("liver",)}, "distant metastasis recorded: liver"),
        ({"peritoneal_cytology_positive": True}, "positive peritoneal cytology"),
        ({"clinical": {"T": Staging("T4b"), "M": Staging("M0")}}, "cT4b"),
        ({"ecog": 3}, "ECOG 3 > 2"),
        ({"ecog": None, "karnofsky": 40}, "ECOG 3 (from Karnofsky 40%) > 2"),
        ({"surgeries": (Surgery("subtotal_gastrectomy", "done"),)}, "radical surgery already"),
    ],
)
def test_any_failing_condition_makes_it_false(change: dict[str, Any], reason: str) -> None:
    verdict = engine.surgical_candidate(dataclasses.replace(CANDIDATE, **change))

    assert verdict.value is False
    assert reason in verdict.explanation


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"primary_site": None}, "primary tumour site not recorded"),
        ({"histology": None}, "histology not recorded"),
        ({"clinical": {"T": Staging("T3")}}, "clinical M stage not recorded"),
        ({"clinical": {"M": Staging("M0")}}, "clinical T stage not recorded"),
        ({"ecog": None}, "performance status not recorded"),
        ({"surgeries": ()}, "whether radical surgery is planned or done is not recorded"),
    ],
)
def test_an_unknown_condition_makes_it_unknown(change: dict[str, Any], reason: str) -> None:
    verdict = engine.surgical_candidate(dataclasses.replace(CANDIDATE, **change))

    assert verdict.value is None
    assert verdict.explanation == f"Unknown: {reason}."


def test_a_failure_outweighs_unknowns() -> None:
    facts = dataclasses.replace(CANDIDATE, ecog=None, histology=Histology.GIST)

    assert engine.surgical_candidate(facts).value is False


def test_karnofsky_60_is_enough_and_gej_counts() -> None:
    facts = dataclasses.replace(CANDIDATE, ecog=None, karnofsky=60, primary_site=CancerSite.GEJ)

    assert engine.surgical_candidate(facts).value is True


@pytest.mark.parametrize(
    ("text", "category", "code", "prefix"),
    [
        ("cT3", "T", "T3", "c"),
        ("T4b", "T", "T4b", ""),
        ("pT1a", "T", "T1a", "p"),
        ("ypT2", "T", "T2", "yp"),
        ("Tis", "T", "Tis", ""),
        ("cN3b", "N", "N3b", "c"),
        ("NX", "N", "NX", ""),
        ("cM1", "M", "M1", "c"),
    ],
)
def test_tnm_codes_parse(text: str, category: str, code: str, prefix: str) -> None:
    assert parse_tnm(text, category) == (code, prefix)


@pytest.mark.parametrize(("text", "category"), [("T5", "T"), ("N4", "N"), ("M2", "M"), ("T3", "N")])
def test_codes_that_do_not_exist_are_refused(text: str, category: str) -> None:
    with pytest.raises(StagingError):
        parse_tnm(text, category)


@pytest.mark.parametrize(
    ("text", "group"), [("III", "III"), ("Stage IIIA", "IIIA"), ("ivb", "IVB")]
)
def test_stage_groups_parse(text: str, group: str) -> None:
    assert parse_stage_group(text) == group


def test_stage_group_that_does_not_exist_is_refused() -> None:
    with pytest.raises(StagingError):
        parse_stage_group("V")


@pytest.mark.parametrize(
    ("code", "low", "high", "inside"),
    [
        ("T3", "T3", "T4a", True),
        ("T4a", "T3", "T4a", True),
        ("T4b", "T3", "T4a", False),
        ("T4b", "T3", "T4", True),
        ("T2", "T3", None, False),
        ("N3b", "N1", None, True),
        ("N0", "N1", None, False),
        ("IIIC", "II", "III", True),
    ],
)
def test_ranges_cover_subcategories(code: str, low: str, high: str | None, inside: bool) -> None:
    category = "stage" if code.startswith("I") else code[0]
    assert within(category, code, low, high) is inside


def test_tx_is_not_informative() -> None:
    assert within("T", "TX", "T2", None) is None
