"""A trial's criteria applied to one patient: met / not met / unknown, each with its reason.

Pure functions over ``PatientFacts`` (``facts.py``) and the constraints of ``constraints.py``;
no Django. The evaluator is built once per patient and reused across trials: derived facts
(age, creatinine clearance, ULN multiples, stage group) are computed once, and each distinct
constraint is checked once per patient however many trials state it.

Outcomes are those of the criterion's own condition: an inclusion is satisfied when it is
``met``, an exclusion when it is ``not_met``. A criterion the engine could not read is
``unknown`` (needs review); so is one whose facts are not recorded. Consent, contraception
and the like are never read into constraints, so they stay unknown and never exclude.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from trials.eligibility import constraints as c
from trials.eligibility import facts as f
from trials.eligibility.drugs import drugs
from trials.eligibility.geo import EARTH_MEAN_RADIUS_KM
from trials.eligibility.lexicon import group_matcher
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import (
    ADENOCARCINOMA_FAMILY,
    CANCER_SITE_LABELS,
    CATEGORY_RANKS,
    GEJ_NEIGHBOURS,
    HISTOLOGY_LABELS,
    OTHER_SITE_CODES,
    CancerSite,
    Histology,
    rank,
)


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    UNKNOWN = "unknown"


class Verdict(StrEnum):
    ELIGIBLE = "eligible"
    POSSIBLE = "possible"
    INELIGIBLE = "ineligible"


OPEN_STATUSES = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"})
NEEDS_REVIEW = "not read by the engine: needs review"
# Ranking within a verdict, after the score and the distance.
STATUS_ORDER = {"RECRUITING": 0, "ENROLLING_BY_INVITATION": 1, "NOT_YET_RECRUITING": 2}
PHASE_ORDER = {"PHASE4": 0, "PHASE3": 1, "PHASE2": 2, "PHASE1": 3, "EARLY_PHASE1": 4}


@dataclass(frozen=True, slots=True)
class Check:
    """A condition against the patient's facts: holds (True / False) or unknown (None)."""

    holds: bool | None
    reason: str
    missing: tuple[str, ...] = ()  # the facts whose absence left it unknown


# --- Trials as the evaluator sees them -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One criterion ready to apply (the coordinator's correction already in force)."""

    position: int
    kind: str  # inclusion / exclusion
    category: str
    constraints: tuple[c.Constraint, ...] = ()
    join: str = "all"
    # Equal (kind, constraints, join, review) share a signature, so a patient's answer to one
    # is reused for every trial that states it (see ``RuleInterner``); -1: not interned.
    signature: int = -1
    # Why the reading may not decide ("reading incomplete, not understood: ..."); "" when it
    # may. A rule under review is evaluated for its explanation but its outcome is unknown,
    # except where ``decides`` says the words it did not understand cannot matter: "absent"
    # (they can only narrow the concepts read, so the concepts' absence settles it) or
    # "present" (an exclusion's alternatives it did not read: the part read already excludes).
    review: str = ""
    decides: str = ""
    # The constraints read in full on their own, though other words of the criterion were
    # not understood: where one of them settles the criterion by itself (an inclusion's
    # requirement not met, an exclusion's alternative present), it decides.
    parts: tuple[int, ...] = ()


class RuleInterner:
    """Gives equal criteria one signature (and one constraints tuple) across trials."""

    def __init__(self) -> None:
        self._known: dict[tuple[Any, ...], tuple[int, Any]] = {}
        self._constraints: dict[c.Constraint, c.Constraint] = {}

    def rule(
        self,
        position: int,
        kind: str,
        category: str,
        constraints: tuple[c.Constraint, ...],
        join: str,
        review: str = "",
        decides: str = "",
        parts: tuple[int, ...] = (),
    ) -> Rule:
        key = (kind, constraints, join, review, decides, parts)
        known = self._known.get(key)
        if known is None:
            # One object per distinct constraint: lookups by it then stop at identity.
            shared = tuple(self._constraints.setdefault(x, x) for x in constraints)
            known = (len(self._known), shared)
            self._known[key] = known
        return Rule(
            position,
            kind,
            category,
            known[1],
            join,
            signature=known[0],
            review=review,
            decides=decides,
            parts=parts,
        )


@dataclass(frozen=True, slots=True)
class SitePoint:
    latitude: float
    longitude: float
    status: str = ""


@dataclass(frozen=True)
class TrialRules:
    """What the matcher needs of a trial, built once (``patients.matching`` caches it)."""

    key: Any  # the trial's primary key (or any identifier)
    nct_id: str
    rules: tuple[Rule, ...]  # every criterion, in order
    status: str = ""
    phases: tuple[str, ...] = ()
    gastric_preop_immunotherapy: bool = False
    gastric: bool = False  # classified a gastric / GEJ cancer trial (the pre-filter reads sites)
    # The cancer sites the trial is for (``classify.trial_cancer_sites``); empty: any site or
    # not known, never filtered out.
    cancer_sites: frozenset[CancerSite] = frozenset()
    minimum_age: float | None = None
    maximum_age: float | None = None
    sex: str = ""  # "FEMALE" / "MALE" / "ALL" / ""
    sites: tuple[SitePoint, ...] = ()

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def status_rank(self) -> int:
        return STATUS_ORDER.get(self.status, 9)

    @property
    def phase_rank(self) -> int:
        return min((PHASE_ORDER.get(phase, 8) for phase in self.phases), default=9)


# --- Results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CriterionResult:
    position: int
    kind: str
    category: str
    outcome: Outcome
    reason: str
    missing: tuple[str, ...] = ()
    parsed: bool = True

    @property
    def satisfied(self) -> bool:
        return self.outcome == (Outcome.MET if self.kind == "inclusion" else Outcome.NOT_MET)

    @property
    def disqualifying(self) -> bool:
        return self.outcome == (Outcome.NOT_MET if self.kind == "inclusion" else Outcome.MET)


@dataclass(frozen=True, slots=True)
class Answer:
    """A patient's answer to one criterion, shared by every trial stating the same one."""

    outcome: Outcome
    reason: str
    missing: tuple[str, ...]
    parsed: bool
    satisfied: bool
    disqualifying: bool


def _answer(
    kind: str, outcome: Outcome, reason: str, missing: tuple[str, ...], parsed: bool
) -> Answer:
    inclusion = kind == "inclusion"
    satisfied = outcome is (Outcome.MET if inclusion else Outcome.NOT_MET)
    disqualifying = outcome is (Outcome.NOT_MET if inclusion else Outcome.MET)
    return Answer(outcome, reason, missing, parsed, satisfied, disqualifying)


_REVIEW_ANSWERS = {
    inclusion: _answer(
        "inclusion" if inclusion else "exclusion", Outcome.UNKNOWN, NEEDS_REVIEW, (), False
    )
    for inclusion in (True, False)
}


@dataclass(slots=True)
class MatchResult:
    key: Any
    nct_id: str
    verdict: Verdict
    score: float  # 0-100: share of criteria satisfied (unknowns earn nothing)
    flagged: bool
    flag_reason: str
    distance_km: float | None
    rules: tuple[Rule, ...]
    answers: tuple[Answer, ...]
    unknown_facts: tuple[str, ...] = ()  # facts that would decide the unknown criteria

    @property
    def criteria(self) -> tuple[CriterionResult, ...]:
        """Each criterion with its answer, in the trial's order."""
        return tuple(
            CriterionResult(
                rule.position,
                rule.kind,
                rule.category,
                answer.outcome,
                answer.reason,
                answer.missing,
                answer.parsed,
            )
            for rule, answer in zip(self.rules, self.answers, strict=True)
        )

    def sort_key(self, trial: TrialRules) -> tuple[Any, ...]:
        return rank_key(self, trial)


def rank_key(result: MatchResult, trial: TrialRules) -> tuple[Any, ...]:
    """Flags first, then by verdict, score, distance, recruitment status and phase."""
    verdict_order = {Verdict.ELIGIBLE: 0, Verdict.POSSIBLE: 1, Verdict.INELIGIBLE: 2}
    return (
        not result.flagged,
        verdict_order[result.verdict],
        -result.score,
        result.distance_km if result.distance_km is not None else math.inf,
        trial.status_rank,
        trial.phase_rank,
        trial.nct_id,
    )


@dataclass(frozen=True)
class Prefilter:
    """Why a pair is not evaluated at all (the cheap checks before the full evaluation)."""

    passed: bool
    reason: str = ""


_PASSED = Prefilter(True)


# --- The evaluator ---------------------------------------------------------------------------

_CLEAN_UP = {"<=": "≤", ">=": "≥"}
_NEGATED_OP = {">=": "<", ">": "≤", "<=": ">", "<": "≥"}


def _op(symbol: str) -> str:
    return _CLEAN_UP.get(symbol, symbol)


def _compare(value: float, op: str, threshold: float) -> bool:
    if op == ">=":
        return value >= threshold
    if op == ">":
        return value > threshold
    if op == "<=":
        return value <= threshold
    if op == "<":
        return value < threshold
    return value == threshold


def _relation(value: float, op: str, threshold: float, holds: bool) -> str:
    """ "≥ 1.5" when it holds, "< 1.5 (needs ≥ 1.5)" when it does not."""
    shown = f.number(threshold)
    if holds:
        return f"{_op(op)} {shown}"
    return f"{_NEGATED_OP.get(op, '≠')} {shown} (needs {_op(op)} {shown})"


_KARNOFSKY_OF_ECOG = {0: (90, 100), 1: (70, 80), 2: (50, 60), 3: (30, 40), 4: (10, 20), 5: (0, 0)}
_TREATMENT_CLASSES = {
    "chemotherapy": f.TreatmentCategory.CHEMOTHERAPY,
    "radiotherapy": f.TreatmentCategory.RADIOTHERAPY,
    "immunotherapy": f.TreatmentCategory.IMMUNOTHERAPY,
    "targeted": f.TreatmentCategory.TARGETED,
}
_ANTICANCER = frozenset(
    {
        f.TreatmentCategory.CHEMOTHERAPY,
        f.TreatmentCategory.RADIOTHERAPY,
        f.TreatmentCategory.IMMUNOTHERAPY,
        f.TreatmentCategory.TARGETED,
        f.TreatmentCategory.OTHER,
    }
)
_AGENT_CLASSES = frozenset({"anti-PD-1", "anti-PD-L1", "anti-CTLA-4"})
_COMORBIDITY_LABELS = {
    "autoimmune": "autoimmune disease",
    "ild": "interstitial lung disease / pneumonitis",
    "hbv": "hepatitis B",
    "hcv": "hepatitis C",
    "hiv": "HIV",
    "immunodeficiency": "immunodeficiency",
    "infection": "active infection",
    "organ_transplant": "organ transplant",
    "stem_cell_transplant": "allogeneic stem-cell transplant",
    "other_malignancy": "another malignancy",
    "myocardial_infarction": "myocardial infarction",
    "unstable_angina": "unstable angina",
    "heart_failure": "heart failure",
    "arrhythmia": "cardiac arrhythmia",
    "stroke": "stroke or transient ischaemic attack",
    "arterial_thromboembolism": "arterial thromboembolism",
    "venous_thromboembolism": "venous thromboembolism (DVT / PE)",
}
_MEDICATION_LABELS = {
    "systemic_steroid": "systemic corticosteroids",
    "immunosuppressant": "immunosuppressants",
    "live_vaccine": "live vaccines",
}
_MARKER_LABELS = {
    "her2_status": "HER2 status",
    "her2_ihc": "HER2 IHC score",
    "her2_ish": "HER2 ISH",
    "msi": "MSI status",
    "mmr": "mismatch-repair status",
    "pdl1_cps": "PD-L1 CPS",
    "ebv": "EBV status",
    "cldn18": "Claudin 18.2 status",
}
# Criterion types whose constraints are the alternatives of an "or": the others in the same
# criterion (site, histology, age, sex) hold beside the alternatives, not among them.
_ALWAYS_TOGETHER = frozenset({"primary_site", "histology", "age", "sex"})
_REVIEW_RESULT: tuple[Outcome, str, tuple[str, ...]] = (Outcome.UNKNOWN, NEEDS_REVIEW, ())


class PatientEvaluator:
    """Applies criteria to one patient on one date, remembering what it has worked out."""

    def __init__(self, facts: f.PatientFacts, on: datetime.date) -> None:
        self.facts = facts
        self.on = on
        self.age = f.age(facts, on)
        self.performance = f.performance_status(facts)
        self.surgical = f.surgical_candidate(facts)
        self._checks: dict[c.Constraint, Check] = {}
        self._answers: dict[Any, Answer] = {}
        self._skipped: dict[tuple[str, str, bool], Answer] = {}
        self._derived: dict[Any, Any] = {}
        self._checkers: dict[type[c.Constraint], Callable[[Any], Check]] = {
            c.Age: self._age,
            c.Sex: self._sex,
            c.Ecog: self._ecog,
            c.Karnofsky: self._karnofsky,
            c.Stage: self._stage,
            c.PrimarySite: self._primary_site,
            c.Histology: self._histology,
            c.Metastasis: self._metastasis,
            c.Resectable: self._resectable,
            c.Lab: self._lab,
            c.PriorTherapy: self._prior_therapy,
            c.Biomarker: self._biomarker,
            c.Comorbidity: self._comorbidity,
            c.Medication: self._medication,
            c.Pregnancy: self._pregnancy,
            c.Surgery: self._surgery,
            c.AnyOf: self._any_of,
            c.AllOf: self._all_of,
        }

    # -- trials ----------------------------------------------------------------------------

    def prefilter(self, trial: TrialRules) -> Prefilter:
        """Is the trial worth evaluating at all: open to enrolment."""
        if not trial.open:
            return Prefilter(False, f"not open to enrolment ({trial.status or 'no status'})")
        return _PASSED

    def site_mismatch(self, trial: TrialRules) -> bool:
        """Is the patient's known primary site outside the sites the trial's conditions name
        (a junction tumour fits gastric and oesophageal trials)? O(1): set lookups only.

        This only chooses the pairs whose disease criteria are read first (``screen``): the
        registry's conditions are not an eligibility criterion, so they never decide alone.
        """
        site = self.facts.primary_site
        sites = trial.cancer_sites
        if site is None or not sites or site in sites:
            return False
        return not (site is CancerSite.GEJ and not sites.isdisjoint(GEJ_NEIGHBOURS))

    def screen(self, trial: TrialRules) -> Prefilter:
        """The registry's own sex and age limits, checked before the criteria are read; for
        a patient whose cancer is not one the trial's conditions name, the trial's disease
        criteria too (a trial for oesophageal cancer that requires it is decided there)."""
        sex = self.facts.sex
        only = trial.sex.lower() if trial.sex in ("FEMALE", "MALE") else None
        if only and sex in ("female", "male") and only != sex:
            return Prefilter(False, f"{only} patients only; {sex} patient")
        if self.age is not None:
            if trial.minimum_age is not None and self.age < math.floor(trial.minimum_age):
                return Prefilter(False, f"age {self.age} < {trial.minimum_age:g}")
            if trial.maximum_age is not None and self.age > trial.maximum_age:
                return Prefilter(False, f"age {self.age} > {trial.maximum_age:g}")
        if self.site_mismatch(trial):
            for rule in trial.rules:
                if rule.kind == "inclusion" and _states_site(rule):
                    answer = self.answer(rule)
                    if answer.disqualifying:
                        return Prefilter(False, f"primary site: {answer.reason}")
        return Prefilter(True)

    def evaluate(self, trial: TrialRules) -> MatchResult:
        screened = self.screen(trial)
        if not screened.passed:
            return self._screened_out(trial, screened.reason)
        known = self._answers
        answers = tuple([known.get(rule.signature) or self.answer(rule) for rule in trial.rules])
        satisfied = disqualified = 0
        for answer in answers:
            satisfied += answer.satisfied
            disqualified += answer.disqualifying
        total = len(answers)
        if disqualified:
            verdict = Verdict.INELIGIBLE
        elif satisfied == total:
            verdict = Verdict.ELIGIBLE
        else:
            verdict = Verdict.POSSIBLE
        score = round(100.0 * satisfied / total, 1) if total else 0.0
        flagged, flag_reason = self._flag(trial, verdict)
        unknown_facts: list[str] = []
        if verdict is Verdict.POSSIBLE:
            for answer in answers:
                if answer.missing and answer.outcome is Outcome.UNKNOWN:
                    unknown_facts.extend(m for m in answer.missing if m not in unknown_facts)
        return MatchResult(
            key=trial.key,
            nct_id=trial.nct_id,
            verdict=verdict,
            score=score,
            flagged=flagged,
            flag_reason=flag_reason,
            distance_km=self.distance(trial),
            rules=trial.rules,
            answers=answers,
            unknown_facts=tuple(unknown_facts),
        )

    def _screened_out(self, trial: TrialRules, reason: str) -> MatchResult:
        """Ineligible on the registry's sex / age limits: those criteria are evaluated, the
        others are left unknown ("not evaluated"), which saves reading them."""
        answers = []
        skipped = self._skipped
        for rule in trial.rules:
            if any(type(x) is c.Age or type(x) is c.Sex for x in rule.constraints) or (
                rule.kind == "inclusion" and _states_site(rule)
            ):
                answers.append(self.answer(rule))
                continue
            key = (reason, rule.kind, bool(rule.constraints))
            answer = skipped.get(key)
            if answer is None:
                answer = _answer(
                    rule.kind,
                    Outcome.UNKNOWN,
                    f"not evaluated: ineligible already ({reason})",
                    (),
                    bool(rule.constraints),
                )
                skipped[key] = answer
            answers.append(answer)
        return MatchResult(
            key=trial.key,
            nct_id=trial.nct_id,
            verdict=Verdict.INELIGIBLE,
            score=0.0,
            flagged=False,
            flag_reason="",
            distance_km=self.distance(trial),
            rules=trial.rules,
            answers=tuple(answers),
        )

    def _flag(self, trial: TrialRules, verdict: Verdict) -> tuple[bool, str]:
        if not trial.gastric_preop_immunotherapy or not trial.open:
            return False, ""
        if verdict is Verdict.INELIGIBLE:
            return False, ""
        candidate = self.surgical.value
        if candidate is False:
            return False, ""
        if candidate is True:
            return True, f"Preoperative immunotherapy trial; {self.surgical.explanation}"
        return True, (
            "Preoperative immunotherapy trial; surgical candidacy to confirm. "
            + self.surgical.explanation
        )

    def distance(self, trial: TrialRules) -> float | None:
        """Kilometres to the nearest open site (the nearest site when no status is given)."""
        place = self.facts.location
        if place is None or not trial.sites:
            return None
        points = _site_points(trial.sites)
        if not points:
            return None
        phi = math.radians(place.latitude)
        lam = math.radians(place.longitude)
        cos_phi = math.cos(phi)
        sin = math.sin
        best = 2.0
        for site_phi, site_lam, site_cos in points:
            # The haversine term alone orders the sites; the distance is taken once.
            half_dphi = sin((site_phi - phi) / 2)
            half_dlam = sin((site_lam - lam) / 2)
            h = half_dphi * half_dphi + cos_phi * site_cos * half_dlam * half_dlam
            if h < best:
                best = h
        km = 2 * EARTH_MEAN_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, best))))
        return round(km, 1)

    # -- criteria --------------------------------------------------------------------------

    def criterion(self, rule: Rule) -> CriterionResult:
        answer = self.answer(rule)
        return CriterionResult(
            rule.position,
            rule.kind,
            rule.category,
            answer.outcome,
            answer.reason,
            answer.missing,
            answer.parsed,
        )

    def answer(self, rule: Rule) -> Answer:
        """The patient's answer to a criterion, worked out once per distinct criterion."""
        key: Any = (
            rule.signature
            if rule.signature >= 0
            else (rule.kind, rule.constraints, rule.join, rule.review, rule.decides, rule.parts)
        )
        known = self._answers.get(key)
        if known is not None:
            return known
        if not rule.constraints:
            known = _REVIEW_ANSWERS[rule.kind == "inclusion"]
        else:
            outcome, reason, missing = self._combine(rule.constraints, rule.join)
            if rule.review and rule.decides:
                narrowed, why, _ = self._combine(rule.constraints, rule.join, settled=rule.decides)
                if narrowed is not Outcome.UNKNOWN:
                    outcome, reason = narrowed, f"{why} (decided on the words read; {rule.review})"
                    known = _answer(rule.kind, outcome, reason, (), True)
                    self._answers[key] = known
                    return known
            if rule.review and rule.parts:
                settled = self._settled_by_parts(rule)
                if settled is not None:
                    why = settled.reason
                    outcome = Outcome.MET if settled.holds else Outcome.NOT_MET
                    reason = f"{why} (decided on the words read; {rule.review})"
                    known = _answer(rule.kind, outcome, reason, (), True)
                    self._answers[key] = known
                    return known
            if rule.review:
                # An uncertain reading never decides: unknown, with what it did not
                # understand and what it would have said.
                known = _answer(
                    rule.kind,
                    Outcome.UNKNOWN,
                    f"{rule.review}. As read: {_as_read(rule.kind, outcome)}{reason}",
                    (),
                    True,
                )
            else:
                known = _answer(rule.kind, outcome, reason, missing, True)
        self._answers[key] = known
        return known

    def _combine(
        self, constraints: tuple[c.Constraint, ...], join: str, *, settled: str = ""
    ) -> tuple[Outcome, str, tuple[str, ...]]:
        if settled:
            # Only what the words read settle: where the concepts read are absent, or
            # (an exclusion's unread alternatives) where they are present.
            leaf = self._narrowed if settled == "absent" else self._widened
            if join == "any":
                together, alternatives = _together_and_alternatives(constraints)
                narrowed = [leaf(x) for x in together]
                narrowed.append(_any([leaf(x) for x in alternatives]))
            else:
                narrowed = [leaf(x) for x in constraints]
            combined = narrowed[0] if len(narrowed) == 1 else _all(narrowed)
            if combined.holds is None:
                return Outcome.UNKNOWN, combined.reason, combined.missing
            return (Outcome.MET if combined.holds else Outcome.NOT_MET), combined.reason, ()
        if join == "any":
            together, alternatives = _together_and_alternatives(constraints)
            checks = [self.check(x) for x in together]
            checks.append(_any([self.check(x, alternative=True) for x in alternatives]))
        elif len(constraints) == 1:
            checks = [self.check(constraints[0])]
        else:
            checks = self._checks_all(constraints)
        combined = checks[0] if len(checks) == 1 else _all(checks)
        outcome = (
            Outcome.UNKNOWN
            if combined.holds is None
            else Outcome.MET
            if combined.holds
            else Outcome.NOT_MET
        )
        return outcome, combined.reason, combined.missing

    def _settled_by_parts(self, rule: Rule) -> Check | None:
        """What the constraints read in full settle alone, or None. An all-of fails when
        one of them fails, and holds when every constraint is read in full and holds; an
        any-of holds when one of them holds (its always-together constraints, the disease
        and the person, read in full and holding too), and fails when every constraint is
        read in full and fails."""
        count = len(rule.constraints)
        parts = tuple(rule.constraints[i] for i in rule.parts if i < count)
        every = len(parts) == count
        if rule.join == "any":
            together, alternatives = _together_and_alternatives(rule.constraints)
            if together:
                checks = [self.check(x) for x in together if x in parts]
                failed = next((x for x in checks if x.holds is False), None)
                if failed is not None:
                    return failed
                if len(checks) < len(together) or any(not x.holds for x in checks):
                    return None
            found = [self.check(y, alternative=True) for y in alternatives if y in parts]
            held = next((x for x in found if x.holds), None)
            if held is not None or not every:
                return held
            return _any(found) if found and all(x.holds is False for x in found) else None
        checks = self._checks_all(parts)
        failed = next((x for x in checks if x.holds is False), None)
        if failed is not None or not every:
            return failed
        return _all(checks) if checks and all(x.holds for x in checks) else None

    def _checks_all(self, constraints: tuple[c.Constraint, ...]) -> list[Check]:
        """Each constraint's check; a conditional limit ("<= 5 x ULN if liver metastases")
        beside a plain limit on the same analyte is an alternative to it, not one more limit."""
        relaxed: dict[tuple[str, str], list[c.Lab]] = {}
        for x in constraints:
            if type(x) is c.Lab and x.condition:
                relaxed.setdefault((x.analyte, x.op[:1]), []).append(x)
        plain = {(x.analyte, x.op[:1]) for x in constraints if type(x) is c.Lab and not x.condition}
        checks = []
        for x in constraints:
            if type(x) is not c.Lab:
                checks.append(self.check(x))
            elif x.condition:
                if (x.analyte, x.op[:1]) not in plain:
                    checks.append(self.check(x))
            elif (x.analyte, x.op[:1]) in relaxed:
                others = relaxed[(x.analyte, x.op[:1])]
                checks.append(
                    _any([self.check(x), *(self.check(y, alternative=True) for y in others)])
                )
            else:
                checks.append(self.check(x))
        return checks

    def check(self, constraint: c.Constraint, *, alternative: bool = False) -> Check:
        if type(constraint) is c.Lab and constraint.condition:
            return self._conditional_lab(constraint, alternative)
        if alternative and isinstance(constraint, c.AllOf) and _conditional(constraint):
            # "or AST/ALT <= 5 x ULN if liver tumours": the branch needs its condition too.
            return _all([self.check(x, alternative=True) for x in constraint.items])
        known = self._checks.get(constraint)
        if known is None:
            checker = self._checkers.get(type(constraint))
            known = (
                checker(constraint)
                if checker
                else Check(None, f"{constraint.type}: not evaluated", ())
            )
            self._checks[constraint] = known
        return known

    def _narrowed(self, constraint: c.Constraint) -> Check:
        """A constraint whose concept may carry qualifiers not understood: the concept's
        absence still settles it, its presence does not (it may not be the qualified one)."""
        if isinstance(constraint, c.AnyOf):
            return _any([self._narrowed(item) for item in constraint.items])
        if isinstance(constraint, c.AllOf):
            return _all([self._narrowed(item) for item in constraint.items])
        if getattr(constraint, "present", True) is False:
            present = dataclasses.replace(constraint, present=True)  # type: ignore[call-arg]
            has = _unsettled_if_true(self.check(present))
            return has if has.holds is None else Check(not has.holds, has.reason)
        return _unsettled_if_true(self.check(constraint))

    def _widened(self, constraint: c.Constraint) -> Check:
        """A constraint beside alternatives not read: where it holds, it settles the
        exclusion; where it does not, an unread alternative may still hold."""
        if isinstance(constraint, c.AnyOf):
            return _any([self._widened(item) for item in constraint.items])
        if isinstance(constraint, c.AllOf):
            return _all([self._widened(item) for item in constraint.items])
        found = self.check(constraint)
        return Check(None, found.reason, found.missing) if found.holds is False else found

    # -- one constraint each ---------------------------------------------------------------

    def _any_of(self, constraint: c.AnyOf) -> Check:
        return _any([self.check(item, alternative=True) for item in constraint.items])

    def _all_of(self, constraint: c.AllOf) -> Check:
        return _all(self._checks_all(constraint.items))

    def _age(self, constraint: c.Age) -> Check:
        if self.age is None:
            return Check(None, "no birth date recorded", ("birth date",))
        low, high = constraint.min, constraint.max
        if low is not None and self.age < math.floor(low):
            return Check(False, f"age {self.age} < {low:g} (needs ≥ {low:g})")
        if high is not None and self.age > high:
            return Check(False, f"age {self.age} > {high:g} (needs ≤ {high:g})")
        return Check(True, f"age {self.age} ({constraint.describe()})")

    def _sex(self, constraint: c.Sex) -> Check:
        sex = self.facts.sex
        if sex not in ("female", "male"):
            return Check(None, "sex not recorded", ("sex",))
        if sex == constraint.sex:
            return Check(True, f"{sex} patient")
        return Check(False, f"{sex} patient; {constraint.sex} patients only")

    def _ecog(self, constraint: c.Ecog) -> Check:
        value = self.performance.value
        if value is None:
            return Check(None, "no performance status recorded", ("ECOG performance status",))
        allowed = sorted(constraint.allowed)
        shown = (
            f"{allowed[0]}-{allowed[-1]}"
            if allowed == list(range(allowed[0], allowed[-1] + 1))
            else ", ".join(map(str, allowed))
        )
        explanation = self.performance.explanation
        if value in constraint.allowed:
            return Check(True, f"{explanation}: within {shown} allowed")
        side = ">" if value > max(allowed) else "<" if value < min(allowed) else "not in"
        bound = max(allowed) if side == ">" else min(allowed) if side == "<" else shown
        return Check(False, f"{explanation} {side} {bound} allowed")

    def _karnofsky(self, constraint: c.Karnofsky) -> Check:
        if self.facts.karnofsky is not None:
            score = self.facts.karnofsky
            holds = score >= constraint.min
            return Check(
                holds, f"Karnofsky {score}% {_relation(score, '>=', constraint.min, holds)}"
            )
        if self.facts.ecog is not None:
            low, high = _KARNOFSKY_OF_ECOG[self.facts.ecog]
            text = f"ECOG {self.facts.ecog} (Karnofsky {low}-{high}%)"
            if low >= constraint.min:
                return Check(True, f"{text} ≥ {constraint.min}")
            if high < constraint.min:
                return Check(False, f"{text} < {constraint.min} (needs ≥ {constraint.min})")
            return Check(
                None, f"{text}: Karnofsky {constraint.min}% not settled", ("Karnofsky score",)
            )
        return Check(None, "no performance status recorded", ("ECOG performance status",))

    def _staging(self, category: str) -> tuple[str | None, str]:
        """The patient's code for a category and where it comes from ("cT3", derived ...)."""
        key = ("staging", category)
        if key in self._derived:
            return self._derived[key]
        facts = self.facts
        found: tuple[str | None, str]
        clinical = facts.clinical.get(category)
        pathological = facts.pathological.get(category)
        if clinical is not None:
            prefix = "c" if category != "stage" else "clinical stage "
            found = (clinical.value, f"{prefix}{clinical.value}")
        elif pathological is not None:
            prefix = "p" if category != "stage" else "pathological stage "
            found = (pathological.value, f"{prefix}{pathological.value}")
        elif category == "M" and (facts.metastatic_sites or facts.peritoneal_cytology_positive):
            where = ", ".join(facts.metastatic_sites) or "positive peritoneal cytology"
            found = ("M1", f"M1 (metastasis recorded: {where})")
        elif category == "stage":
            found = self._stage_group()
        else:
            found = (None, "")
        self._derived[key] = found
        return found

    def _stage_group(self) -> tuple[str | None, str]:
        """The AJCC 8th clinical stage group of stomach cancer, from cT, cN and cM."""
        t, _ = self._staging("T")
        n, _ = self._staging("N")
        m, _ = self._staging("M")
        group = clinical_stage_group(t, n, m)
        if group is None:
            return None, ""
        return group, f"stage {group} (from {t or ''} {n or ''} {m or ''}, AJCC 8th clinical)"

    def _stage(self, constraint: c.Stage) -> Check:
        category = constraint.category
        value, shown = self._staging(category)
        names = {"T": "T stage", "N": "N stage", "M": "M stage", "stage": "stage group"}
        if value is None:
            return Check(None, f"no {names[category]} recorded", (f"clinical {names[category]}",))
        wanted = constraint.describe()
        if constraint.any_of:
            answers = [_within(category, value, code, code) for code in constraint.any_of]
            holds = True if True in answers else None if None in answers else False
        else:
            holds = _within(category, value, constraint.min, constraint.max)
        if holds is None:
            return Check(
                None, f"{shown}: too coarse to tell {wanted}", (f"clinical {names[category]}",)
            )
        return Check(holds, f"{shown} {'is' if holds else 'is not'} {wanted}")

    def _primary_site(self, constraint: c.PrimarySite) -> Check:
        site = self.facts.primary_site
        if site is None:
            return Check(None, "primary tumour site not recorded", ("primary tumour site",))
        label = CANCER_SITE_LABELS[site]
        wanted = " or ".join(x.replace("_", " ") for x in constraint.any_of)
        if site.value in constraint.any_of:
            return Check(True, f"primary {label}")
        if site is CancerSite.OTHER:
            code = self.facts.primary_site_code.upper()
            named = [x for x in constraint.any_of if x in OTHER_SITE_CODES]
            if code and any(code.startswith(OTHER_SITE_CODES[x]) for x in named):
                return Check(True, f"primary {code}, a {wanted} cancer")
            if not named:
                # Recorded as a site outside the upper GI tract: not the one asked for.
                return Check(False, f"primary {label}{f' ({code})' if code else ''}, not {wanted}")
            if not code:
                return Check(
                    None,
                    f"primary site {code or 'other'}: whether it is {wanted} is not recorded",
                    ("primary tumour site",),
                )
            return Check(False, f"primary {code}, not {wanted}")
        if site is CancerSite.GEJ and "stomach" in constraint.any_of:
            siewert = (self.facts.siewert_type or "").upper()
            if siewert == "III":
                return Check(True, "GEJ Siewert III, staged and treated as gastric")
            if siewert in ("I",):
                return Check(False, f"GEJ Siewert {siewert}; the criterion asks for {wanted}")
            return Check(
                None,
                f"GEJ tumour{f' Siewert {siewert}' if siewert else ''}: whether the criterion's "
                f"{wanted} covers it needs review",
                ("Siewert type",),
            )
        return Check(False, f"primary {label}, not {wanted}")

    def _histology(self, constraint: c.Histology) -> Check:
        histology = self.facts.histology
        if histology is None:
            return Check(None, "histology not recorded", ("histology",))
        label = HISTOLOGY_LABELS[histology]
        wanted = constraint.describe()
        answers = [_histology_matches(histology, value) for value in constraint.any_of]
        if True in answers:
            return Check(True, label if label == wanted else f"{label}, counts as {wanted}")
        if None in answers:
            return Check(None, f"{label}: subtype not recorded to tell {wanted}", ("histology",))
        return Check(False, f"{label}, not {wanted}")

    def _site_metastasis(self, site: str) -> Check:
        """Has the patient metastasis at ``site`` (``distant`` for any)?"""
        facts = self.facts
        m_value, m_shown = self._staging("M")
        recorded = facts.metastatic_sites
        if site == "distant":
            if recorded:
                return Check(True, "distant metastasis recorded: " + ", ".join(recorded))
            if facts.peritoneal_cytology_positive:
                return Check(True, "positive peritoneal cytology (M1)")
            if m_value == "M1":
                return Check(True, m_shown)
            if m_value == "M0":
                return Check(False, f"{m_shown}: no distant metastasis")
            return Check(None, "no M stage or metastatic sites recorded", ("clinical M stage",))
        wanted = {"peritoneal": "peritoneum"}.get(site, site)
        if wanted in recorded:
            return Check(True, f"{site} metastasis recorded")
        if site == "peritoneal" and facts.peritoneal_cytology_positive:
            return Check(True, "positive peritoneal cytology")
        if m_value == "M0" and not recorded:
            return Check(False, f"{m_shown}: no {site} metastasis")
        if recorded:
            return Check(
                None,
                f"metastatic sites recorded ({', '.join(recorded)}) do not mention {site}",
                (f"{site} metastasis",),
            )
        if m_value == "M1":
            return Check(None, f"{m_shown}: sites not recorded", (f"{site} metastasis",))
        return Check(None, "no M stage or metastatic sites recorded", ("clinical M stage",))

    def _metastasis(self, constraint: c.Metastasis) -> Check:
        has = self._site_metastasis(constraint.site)
        if constraint.present or has.holds is None:
            return has
        return Check(not has.holds, has.reason, has.missing)

    def _resectable(self, constraint: c.Resectable) -> Check:
        resectable = self._derived.get("resectable")
        if resectable is None:
            resectable = self._resectability()
            self._derived["resectable"] = resectable
        if constraint.value or resectable.holds is None:
            return resectable
        return Check(not resectable.holds, resectable.reason, resectable.missing)

    def _resectability(self) -> Check:
        distant = self._site_metastasis("distant")
        if distant.holds:
            return Check(False, f"not resectable: {distant.reason}")
        t_value, t_shown = self._staging("T")
        if t_value == "T4b":
            return Check(False, f"not resectable: {t_shown} (invades adjacent structures)")
        planned = [s for s in self.facts.surgeries if s.radical and s.status == "planned"]
        if distant.holds is False and planned:
            return Check(True, f"resectable: {planned[0].procedure.replace('_', ' ')} planned")
        if distant.holds is False and t_value is not None:
            return Check(True, f"resectable: {t_shown}, {distant.reason.split(':')[0]}")
        missing = tuple(
            name
            for name, known in (("clinical T stage", t_value), ("clinical M stage", distant.holds))
            if known is None
        )
        return Check(None, "resectability not settled: " + ", ".join(missing) + " unknown", missing)

    def _lab_value(self, analyte_name: str, uln: bool) -> tuple[float | None, str, tuple[str, ...]]:
        key = ("lab", analyte_name, uln)
        if key in self._derived:
            return self._derived[key]
        try:
            analyte = Analyte(analyte_name)
        except ValueError:
            found: tuple[float | None, str, tuple[str, ...]] = (
                None,
                f"{analyte_name}: not a value the engine knows",
                (analyte_name,),
            )
            self._derived[key] = found
            return found
        if uln:
            derived = f.uln_multiple(self.facts, analyte)
            value = derived.value
            found = (
                float(value) if value is not None else None,
                derived.explanation,
                (analyte.label,),
            )
        elif analyte is Analyte.CREATININE_CLEARANCE:
            derived = f.creatinine_clearance(self.facts, self.on)
            value = derived.value
            found = (
                float(value) if value is not None else None,
                derived.explanation,
                ("creatinine clearance (or weight and serum creatinine)",),
            )
        else:
            lab = self.facts.labs.get(analyte)
            if lab is None:
                found = (None, f"no {analyte.label} recorded", (analyte.label,))
            else:
                original = ""
                if lab.original_unit and lab.original_unit != lab.unit:
                    original = f" (recorded as {f.number(lab.original_value)} {lab.original_unit})"
                found = (
                    lab.value,
                    f"{analyte.label} {f.number(lab.value)} {lab.unit}{original}",
                    (analyte.label,),
                )
        self._derived[key] = found
        return found

    def _lab(self, constraint: c.Lab) -> Check:
        uln = constraint.uln is not None
        threshold = constraint.uln if uln else constraint.value
        if threshold is None:
            return Check(None, f"{constraint.analyte}: no threshold stated", ())
        value, explanation, missing = self._lab_value(constraint.analyte, uln)
        if value is None:
            return Check(None, explanation, missing)
        holds = _compare(value, constraint.op, threshold)
        if uln:
            wanted = f"{_op(constraint.op)} {f.number(threshold)} x ULN"
            verdict = "within" if holds else "outside"
            return Check(holds, f"{explanation}: {verdict} {wanted}")
        return Check(holds, f"{explanation} {_relation(value, constraint.op, threshold, holds)}")

    def _conditional_lab(self, constraint: c.Lab, alternative: bool) -> Check:
        """A threshold that applies only in a condition ("<= 5 x ULN if liver metastases").

        As one of several alternatives it needs the condition and the threshold; on its own
        it binds only when the condition holds.
        """
        condition = self._condition(constraint.condition or "")
        threshold = self.check(
            c.Lab(
                analyte=constraint.analyte,
                op=constraint.op,
                value=constraint.value,
                uln=constraint.uln,
            )
        )
        label = (constraint.condition or "").replace("not_", "no ").replace("_", " ")
        if alternative:
            if condition.holds is False:
                return Check(False, f"{threshold.reason} (the limit for {label} does not apply)")
            if condition.holds is None:
                if threshold.holds is False:
                    return Check(False, threshold.reason)
                return Check(None, f"{condition.reason}; {threshold.reason}", condition.missing)
            return Check(threshold.holds, f"{label}: {threshold.reason}", threshold.missing)
        if condition.holds is False:
            return Check(True, f"applies only with {label}: {condition.reason}")
        if condition.holds is None:
            if threshold.holds is True:
                return Check(True, threshold.reason)
            return Check(None, f"{condition.reason}; {threshold.reason}", condition.missing)
        return Check(threshold.holds, f"{label}: {threshold.reason}", threshold.missing)

    def _condition(self, name: str) -> Check:
        if name.startswith("not_"):
            has = self._condition(name[4:])
            if has.holds is None:
                return has
            return Check(not has.holds, has.reason, has.missing)
        if name == "liver_metastases":
            return self._site_metastasis("liver")
        if name == "gilbert":
            for comorbidity in self.facts.comorbidities:
                if "gilbert" in comorbidity.name.lower():
                    return Check(comorbidity.present, f"Gilbert syndrome: {comorbidity.present}")
            return Check(None, "Gilbert syndrome not recorded", ("Gilbert syndrome",))
        return Check(None, f"condition {name!r} not evaluated", (name,))

    def _prior_therapy(self, constraint: c.PriorTherapy) -> Check:
        answers = [self._prior_class(name, constraint.within_days) for name in constraint.classes]
        has = _any(answers) if answers else Check(None, "no therapy class stated", ())
        if constraint.present or has.holds is None:
            return has
        return Check(not has.holds, has.reason, has.missing)

    def _prior_class(self, name: str, within_days: int | None) -> Check:
        facts = self.facts
        window = f" in the last {within_days} days" if within_days else ""
        label = name if name != "anticancer" else "anticancer therapy"
        if name == "surgery":
            return self._prior_surgery(within_days)
        matching = [t for t in facts.treatments if t.status != "planned" and _is_class(t, name)]
        if matching:
            if not within_days:
                return Check(True, f"prior {label}: {_treatment_text(matching[0])}")
            unknown_dates = []
            for treatment in matching:
                recent = _within_days(treatment, self.on, within_days)
                if recent:
                    return Check(True, f"{label}{window}: {_treatment_text(treatment)}")
                if recent is None:
                    unknown_dates.append(treatment)
            if unknown_dates:
                return Check(
                    None,
                    f"{label}: {_treatment_text(unknown_dates[0])}, dates not recorded",
                    (f"dates of prior {label}",),
                )
            if name == "anticancer":
                # Only some kinds recorded: another kind may have been given in the window.
                return Check(
                    None,
                    f"{label}{window} not recorded ({_treatment_text(matching[0])} earlier)",
                    (f"prior {label}",),
                )
            return Check(False, f"{label} recorded, none{window}")
        if facts.prior_anticancer_therapy and name == "anticancer" and not within_days:
            return Check(True, "prior anticancer therapy, as recorded (agents not recorded)")
        if facts.prior_anticancer_therapy is False and name != "investigational":
            return Check(False, f"no prior {label}: no anticancer therapy before, as recorded")
        if facts.prior_anticancer_therapy is False:
            return Check(False, "no anticancer therapy before, as recorded")
        return Check(None, f"prior {label}{window} not recorded", (f"prior {label}",))

    def _prior_surgery(self, within_days: int | None) -> Check:
        done = [s for s in self.facts.surgeries if s.status == "done"]
        if within_days:
            for surgery in done:
                if surgery.date is not None and (self.on - surgery.date).days <= within_days:
                    return Check(True, f"{surgery.procedure.replace('_', ' ')} on {surgery.date}")
            if any(s.date is None for s in done):
                return Check(None, "surgery done, date not recorded", ("date of surgery",))
            return Check(
                None, f"surgery in the last {within_days} days not recorded", ("recent surgery",)
            )
        radical = [s for s in done if s.radical]
        if radical:
            return Check(True, f"{radical[0].procedure.replace('_', ' ')} done")
        planned = [s for s in self.facts.surgeries if s.radical and s.status == "planned"]
        if planned:
            return Check(False, f"{planned[0].procedure.replace('_', ' ')} planned, not yet done")
        return Check(None, "prior surgery not recorded", ("prior surgery",))

    def _biomarker(self, constraint: c.Biomarker) -> Check:
        marker = constraint.marker
        label = _MARKER_LABELS.get(marker, marker)
        if marker == "pdl1_cps":
            cps = self.facts.pdl1_cps
            if cps is None or constraint.value is None or constraint.op is None:
                return Check(None, "PD-L1 CPS not recorded", ("PD-L1 CPS",))
            holds = _compare(cps, constraint.op, constraint.value)
            return Check(
                holds,
                f"PD-L1 CPS {f.number(cps)} "
                + _relation(cps, constraint.op, constraint.value, holds),
            )
        value, shown = self._marker_value(marker)
        if value is None and marker in _ONE_FINDING:
            # MSI and MMR status are one finding tested two ways: a tumour tested one way
            # answers for the other (MSI-H is dMMR, MSS and MSI-L are pMMR).
            partner = _ONE_FINDING[marker]
            found, other_shown = self._marker_value(partner)
            if found:
                value = _FINDING_AS[marker].get(found.upper()) or None
                shown = f"{other_shown} (the same finding as {label} {value})" if value else shown
        if value is None:
            other = {"msi": "mmr", "mmr": "msi"}.get(marker)
            hint = ""
            if other and self._marker_value(other)[0]:
                hint = f" ({self._marker_value(other)[1]} recorded)"
            return Check(None, f"{label} not recorded{hint}", (label,))
        wanted = [v.lower() for v in constraint.any_of]
        if value.lower() in wanted or _her2_equivalent(marker, value, wanted):
            return Check(True, f"{shown} ({' or '.join(constraint.any_of)})")
        if marker == "her2_status" and value.lower() == "equivocal":
            return Check(None, f"{shown}: ISH needed to tell", ("HER2 ISH",))
        return Check(False, f"{shown}, not {' or '.join(constraint.any_of)}")

    def _marker_value(self, marker: str) -> tuple[str | None, str]:
        markers = self.facts.biomarkers
        label = _MARKER_LABELS.get(marker, marker)
        value = markers.get(marker)
        if value:
            return value, f"{label} {value}"
        if marker == "her2_status":
            ihc, ish = markers.get("her2_ihc"), markers.get("her2_ish")
            derived = her2_status(ihc, ish)
            if derived:
                parts = ", ".join(
                    part for part in (ihc and f"IHC {ihc}", ish and f"ISH {ish}") if part
                )
                return derived, f"HER2 {derived} ({parts})"
        return None, ""

    def _comorbidity(self, constraint: c.Comorbidity) -> Check:
        label = _COMORBIDITY_LABELS.get(constraint.kind, constraint.kind.replace("_", " "))
        recorded = [x for x in self.facts.comorbidities if x.kind.value == constraint.kind]
        has = self._has_comorbidity(constraint, recorded, label)
        if constraint.present or has.holds is None:
            return has
        return Check(not has.holds, has.reason, has.missing)

    def _has_comorbidity(
        self, constraint: c.Comorbidity, recorded: list[f.Comorbidity], label: str
    ) -> Check:
        if not recorded:
            return Check(None, f"{label}: not recorded", (label,))
        present = [x for x in recorded if x.present]
        if not present:
            return Check(False, f"{label} ruled out")
        exceptions = [word.lower() for word in constraint.exceptions]
        curative = any(word in _CURATIVE_EXCEPTIONS for word in exceptions)
        unknown: list[str] = []
        excepted: list[str] = []
        others: list[str] = []
        for item in present:
            name = item.name or label
            active = item.active
            if item.kind is f.ComorbidityKind.INFECTION and not constraint.within_years:
                # An infection counts while current, whatever the criterion's wording.
                active = _infection_current(item, self.on)
                if active is None:
                    unknown.append(f"{name}: whether still current is not recorded")
                    continue
                if not active:
                    continue
            if any(_excepted(item.name, word) for word in exceptions):
                excepted.append(name)
                continue
            if constraint.named:
                if not item.name:
                    unknown.append(f"{label}: which disease is not recorded")
                    continue
                if not set(constraint.named) & named_diseases(item.name):
                    others.append(name)  # another disease of the kind
                    continue
            if curative and item.active is not True:
                unknown.append(f"{name}: whether treated curatively is not recorded")
                continue
            if constraint.active and active is False:
                continue
            if constraint.systemic_treatment:
                treated = self._systemically_treated(
                    constraint.within_years, replacement=bool(constraint.replacement_allowed)
                )
                if treated is None:
                    unknown.append(f"{name}: systemic treatment not recorded")
                    continue
                if not treated:
                    continue
                return Check(True, f"{name} recorded, treated systemically ({treated})")
            if constraint.within_years:
                recent = _recent(item, self.on, constraint.within_years)
                if recent is None:
                    unknown.append(f"{name}: onset not recorded")
                    continue
                if not recent:
                    continue
            if constraint.active and active is None:
                unknown.append(f"{name}: whether active is not recorded")
                continue
            return Check(True, f"{name} recorded")
        if unknown:
            return Check(None, "; ".join(unknown), (f"{label}: activity and onset",))
        if excepted:
            return Check(False, f"{', '.join(excepted)}: an exception the criterion allows")
        if others and len(others) == len(present):
            wanted = " or ".join(constraint.named)
            return Check(False, f"{', '.join(others)} recorded, not {wanted}")
        window = (
            f" in the last {constraint.within_years:g} years" if constraint.within_years else ""
        )
        current = "active " if constraint.active else ""
        return Check(False, f"no {current}{label}{window} (recorded as past or inactive)")

    def _systemically_treated(
        self, within_years: float | None, *, replacement: bool = False
    ) -> str | bool | None:
        """A systemic immunosuppressant or corticosteroid taken (within the window): its name;
        False when medications are recorded and none is one; None when none are recorded.
        ``replacement``: the criterion allows replacement therapy, so a steroid counts only
        above a replacement dose (10 mg/day prednisone-equivalent; unknown dose: not known)."""
        medications = self.facts.medications
        if not medications:
            return None
        days = round(within_years * 365.25) if within_years else None
        uncertain = False
        for medication in medications:
            if medication.category not in ("immunosuppressant", "systemic_steroid"):
                continue
            current = _medication_current(medication, self.on, days)
            if current is None and days is None:
                current = True  # taken at some time: "has required"
            if not current:
                continue
            dose = medication.prednisone_mg_per_day
            low = dose is None or dose <= f.IMMUNOSUPPRESSIVE_PREDNISONE_MG
            if replacement and medication.category == "systemic_steroid" and low:
                uncertain = True  # perhaps only replacement
                continue
            return medication.name
        return None if uncertain else False

    def _medication(self, constraint: c.Medication) -> Check:
        label = _MEDICATION_LABELS.get(constraint.category, constraint.category)
        has = self._has_medication(constraint, label)
        if constraint.present or has.holds is None:
            return has
        return Check(not has.holds, has.reason, has.missing)

    def _has_medication(self, constraint: c.Medication, label: str) -> Check:
        if constraint.category == "immunosuppressant":
            steroid = self._immunosuppressive_steroid(constraint.within_days)
            if steroid is not None:
                return steroid
        recorded = [m for m in self.facts.medications if m.category == constraint.category]
        if not recorded:
            return Check(None, f"{label}: not recorded", (label,))
        unknown: list[str] = []
        for medication in recorded:
            current = _medication_current(medication, self.on, constraint.within_days)
            if current is False:
                continue
            if current is None:
                unknown.append(f"{medication.name}: whether taken now is not recorded")
                continue
            if constraint.over_mg_per_day is not None:
                dose = medication.prednisone_mg_per_day
                if dose is None:
                    unknown.append(f"{medication.name}: dose not recorded")
                    continue
                if dose <= constraint.over_mg_per_day:
                    continue
                return Check(
                    True,
                    f"{medication.name} {f.number(dose)} mg/day prednisone-equivalent "
                    f"> {f.number(constraint.over_mg_per_day)}",
                )
            return Check(True, f"{medication.name} taken")
        if unknown:
            return Check(None, "; ".join(unknown), (label,))
        doses = [
            f"{m.name} {f.number(m.prednisone_mg_per_day)} mg/day"
            for m in recorded
            if m.prednisone_mg_per_day is not None
            and _medication_current(m, self.on, constraint.within_days)
        ]
        if constraint.over_mg_per_day is not None and doses:
            return Check(
                False,
                f"{', '.join(doses)} prednisone-equivalent ≤ "
                f"{f.number(constraint.over_mg_per_day)}",
            )
        if constraint.category == "immunosuppressant" and not any(
            m.category == "systemic_steroid" for m in self.facts.medications
        ):
            # Steroids above replacement doses are immunosuppressants too: none taken is
            # known only where the steroids are recorded as well.
            steroids = _MEDICATION_LABELS["systemic_steroid"]
            return Check(None, f"no {label} taken now; {steroids} not recorded", (steroids,))
        return Check(False, f"no {label} taken now")

    def _immunosuppressive_steroid(self, within_days: int | None) -> Check | None:
        """A systemic corticosteroid above 10 mg/day prednisone-equivalent is an
        immunosuppressive medication (docs/domain.md). It only ever shows one is taken: a
        lower or unrecorded dose says nothing of the other immunosuppressants."""
        for medication in self.facts.medications:
            dose = medication.prednisone_mg_per_day
            if medication.category != "systemic_steroid" or dose is None:
                continue
            if dose > f.IMMUNOSUPPRESSIVE_PREDNISONE_MG and _medication_current(
                medication, self.on, within_days
            ):
                return Check(
                    True,
                    f"{medication.name} {f.number(dose)} mg/day prednisone-equivalent "
                    f"(> {f.number(f.IMMUNOSUPPRESSIVE_PREDNISONE_MG)}: immunosuppressive)",
                )
        return None

    def _pregnancy(self, constraint: c.Pregnancy) -> Check:
        facts = self.facts
        if facts.pregnant or facts.breastfeeding:
            has = Check(True, "pregnant" if facts.pregnant else "breastfeeding")
        elif facts.sex == "male":
            has = Check(False, "male patient")
        elif facts.pregnant is False and facts.breastfeeding is False:
            has = Check(False, "not pregnant, not breastfeeding")
        else:
            has = Check(None, "pregnancy / breastfeeding not recorded", ("pregnancy status",))
        if constraint.present or has.holds is None:
            return has
        return Check(not has.holds, has.reason, has.missing)

    def _surgery(self, constraint: c.Surgery) -> Check:
        radical = [s for s in self.facts.surgeries if s.radical]
        if constraint.procedures:
            named = _named_surgery(constraint, radical)
            if named is not None:
                return named
        done = [s for s in radical if s.status == "done"]
        planned = [s for s in radical if s.status == "planned"]
        if constraint.status == "done":
            if done:
                has = Check(True, f"{done[0].procedure.replace('_', ' ')} done")
            elif planned:
                has = Check(
                    False, f"{planned[0].procedure.replace('_', ' ')} planned, not yet done"
                )
            else:
                has = Check(None, "radical surgery not recorded", ("planned or done surgery",))
        elif planned:
            has = Check(True, f"{planned[0].procedure.replace('_', ' ')} planned")
        elif done:
            has = Check(False, f"{done[0].procedure.replace('_', ' ')} already done")
        else:
            has = Check(None, "planned surgery not recorded", ("planned or done surgery",))
        if constraint.present or has.holds is None:
            return has
        return Check(not has.holds, has.reason, has.missing)


# --- Helpers ------------------------------------------------------------------------------------


def _named_surgery(constraint: c.Surgery, radical: list[f.Surgery]) -> Check | None:
    """A criterion naming its operations ("total or distal gastrectomy"): the recorded
    surgery of that status is one of them or not; None (the general answer) when none is
    recorded, unknown when the one recorded has no specific name."""
    wanted = set(constraint.procedures)
    if "distal_gastrectomy" in wanted:
        wanted.add("subtotal_gastrectomy")
    recorded = [s for s in radical if s.status == constraint.status]
    if not recorded:
        return None
    names = " or ".join(x.replace("_", " ") for x in constraint.procedures)
    if any(s.procedure in wanted for s in recorded):
        surgery = next(s for s in recorded if s.procedure in wanted)
        has = Check(True, f"{surgery.procedure.replace('_', ' ')} {constraint.status}")
    elif any(s.procedure in ("gastrectomy", "other") for s in recorded):
        has = Check(None, f"which operation is {constraint.status} is not recorded", ("surgery",))
    else:
        shown = ", ".join(s.procedure.replace("_", " ") for s in recorded)
        has = Check(False, f"{shown} {constraint.status}, not {names}")
    if constraint.present or has.holds is None:
        return has
    return Check(not has.holds, has.reason, has.missing)


_POINTS: dict[int, tuple[tuple[SitePoint, ...], tuple[tuple[float, float, float], ...]]] = {}


def _site_points(sites: tuple[SitePoint, ...]) -> tuple[tuple[float, float, float], ...]:
    """The sites a distance is taken to (open ones; all when no status is given), distinct,
    as (latitude and longitude in radians, cosine of latitude); worked out once per trial."""
    held = _POINTS.get(id(sites))
    if held is not None and held[0] is sites:
        return held[1]
    with_status = [site for site in sites if site.status]
    chosen = (
        [site for site in with_status if site.status in OPEN_STATUSES] if with_status else sites
    )
    distinct = {(site.latitude, site.longitude) for site in chosen}
    points = tuple(
        (math.radians(lat), math.radians(lon), math.cos(math.radians(lat)))
        for lat, lon in sorted(distinct)
    )
    if len(_POINTS) > 50_000:
        _POINTS.clear()
    _POINTS[id(sites)] = (sites, points)  # the tuple is held, so its id is not reused
    return points


_ONE_FINDING = {"msi": "mmr", "mmr": "msi"}
_FINDING_AS = {
    "msi": {"DMMR": "MSI-H", "PMMR": "MSS"},
    "mmr": {"MSI-H": "dMMR", "MSS": "pMMR", "MSI-L": "pMMR"},
}


def _states_site(rule: Rule) -> bool:
    return any(type(x) is c.PrimarySite for x in rule.constraints)


def _unsettled_if_true(check: Check) -> Check:
    if check.holds:
        return Check(None, check.reason, check.missing)
    return check


def _as_read(kind: str, outcome: Outcome) -> str:
    if outcome is Outcome.UNKNOWN:
        return ""
    return f"{kind} {'met' if outcome is Outcome.MET else 'not met'}: "


@functools.lru_cache(maxsize=1024)
def named_diseases(name: str) -> frozenset[str]:
    """The specific autoimmune diseases a recorded condition's name is one of."""
    matcher = group_matcher("autoimmune_diseases")
    return frozenset(x for a, b, _ in matcher.finditer(name) for x in matcher.concepts(name[a:b]))


def _together_and_alternatives(
    constraints: Sequence[c.Constraint],
) -> tuple[list[c.Constraint], list[c.Constraint]]:
    """An any-of's constraints that hold for every alternative (the disease and the person)
    and its alternatives; all are alternatives when there is nothing else."""
    together = [x for x in constraints if x.type in _ALWAYS_TOGETHER]
    alternatives = [x for x in constraints if x.type not in _ALWAYS_TOGETHER]
    if not alternatives:
        return [], list(constraints)
    return together, alternatives


def _conditional(constraint: c.AllOf) -> bool:
    return any(type(x) is c.Lab and x.condition for x in c.leaves(constraint))


def _all(checks: Sequence[Check]) -> Check:
    failing = [x for x in checks if x.holds is False]
    if failing:
        return Check(False, "; ".join(x.reason for x in failing))
    unknown = [x for x in checks if x.holds is None]
    if unknown:
        missing: list[str] = []
        for x in unknown:
            missing.extend(m for m in x.missing if m not in missing)
        return Check(None, "; ".join(x.reason for x in unknown), tuple(missing))
    return Check(True, "; ".join(x.reason for x in checks))


def _any(checks: Sequence[Check]) -> Check:
    holding = [x for x in checks if x.holds]
    if holding:
        return Check(True, holding[0].reason)
    unknown = [x for x in checks if x.holds is None]
    if unknown:
        missing: list[str] = []
        for x in unknown:
            missing.extend(m for m in x.missing if m not in missing)
        return Check(None, "; ".join(x.reason for x in unknown), tuple(missing))
    return Check(False, "; ".join(x.reason for x in checks))


def _within(category: str, code: str, low: str | None, high: str | None) -> bool | None:
    """Is a patient's code inside [low, high]? A bare parent code ("T4", "II") stands for
    any of its subcategories: True when all of them are inside, False when none is, None
    when some are (and for TX / NX)."""
    value = rank(category, code)
    if value is None:
        return None
    ranks = CATEGORY_RANKS[category]
    possible = [value]
    if value == int(value):
        subcategories = [
            r for r in ranks.values() if r is not None and r != value and int(r) == value
        ]
        possible = subcategories or possible
    low_rank = rank(category, low) if low else None
    high_rank = rank(category, high) if high else None
    ceiling = None
    if high_rank is not None:
        ceiling = high_rank + 0.9 if high_rank == int(high_rank) else high_rank
    inside = [
        (low_rank is None or r >= low_rank) and (ceiling is None or r <= ceiling) for r in possible
    ]
    if all(inside):
        return True
    if not any(inside):
        return False
    return None


def clinical_stage_group(t: str | None, n: str | None, m: str | None) -> str | None:
    """AJCC 8th edition clinical (cTNM) stage group of stomach cancer, when it is determined."""
    if m == "M1":
        return "IVB"
    if t is None or m != "M0":
        return None
    t_rank = rank("T", t)
    if t_rank is None:
        return None
    if t == "T4b":
        return "IVA"
    n_rank = rank("N", n) if n else None
    if t == "Tis" and n == "N0":
        return "0"
    if n_rank is None:
        return None
    node_positive = n_rank >= 1
    if t_rank < 3:  # T1, T2
        return "IIA" if node_positive else "I"
    if t_rank >= 3 and t_rank <= 4.1:  # T3, T4, T4a
        if t == "T4":
            return None  # T4 without a / b: IVA if b
        return "III" if node_positive else "IIB"
    return None


def _histology_matches(histology: Histology, wanted: str) -> bool | None:
    if wanted == histology.value:
        return True
    if wanted == "adenocarcinoma":
        return histology in ADENOCARCINOMA_FAMILY
    if wanted == "other":
        known = {h.value for h in Histology} - {"other"}
        return (
            None if histology is Histology.OTHER else (False if histology.value in known else None)
        )
    if histology is Histology.ADENOCARCINOMA and wanted in {h.value for h in ADENOCARCINOMA_FAMILY}:
        return None  # "adenocarcinoma" without subtype against a subtype
    if histology is Histology.OTHER:
        return None
    return False


def her2_status(ihc: str | None, ish: str | None) -> str | None:
    """HER2 status from IHC and ISH (ASCO/CAP gastric): 3+ or 2+ amplified is positive."""
    if ihc == "3+":
        return "positive"
    if ihc in ("0", "1+"):
        return "negative"
    if ihc == "2+":
        if ish == "amplified":
            return "positive"
        if ish == "not amplified":
            return "negative"
        return "equivocal"
    if ish == "amplified":
        return "positive"
    return None


def _her2_equivalent(marker: str, value: str, wanted: list[str]) -> bool:
    if marker == "her2_ish":
        return (value == "amplified" and "positive" in wanted) or (
            value == "not amplified" and "negative" in wanted
        )
    return False


# Exceptions no record tells apart from other past cancers: such a cancer's exclusion is
# not known, unless it is active now (``extract.OTHER_MALIGNANCY_EXCEPTIONS``).
_CURATIVE_EXCEPTIONS = frozenset(
    {"cured", "curatively treated", "resected", "localized", "localised", "low-risk", "low risk"}
)
_SKIN_EXCEPTIONS = frozenset({"skin", "non-melanoma", "basal cell", "squamous cell skin"})


def _excepted(name: str, exception: str) -> bool:
    name = name.lower()
    if not name:
        return False
    if exception in _SKIN_EXCEPTIONS:
        # Non-melanoma skin cancer: a melanoma of the skin is not one.
        return "melanoma" not in name and (
            "skin" in name or "basal cell" in name or "squamous cell carcinoma of skin" in name
        )
    if exception in ("in situ", "carcinoma in situ"):
        return "in situ" in name or "in-situ" in name
    if exception in name:
        return True
    # "type 1 diabetes" also matches "type I diabetes" and the other way round.
    return exception.replace(" i ", " 1 ") in name.replace(" i ", " 1 ")


def _infection_current(item: f.Comorbidity, on: datetime.date) -> bool | None:
    """An infection is current when recorded active with an onset in the last
    ``INFECTION_CURRENT_DAYS``; active with an older or unknown onset: not known."""
    if item.active is False:
        return False
    if item.active is None or item.onset is None:
        return None
    return (on - item.onset).days <= f.INFECTION_CURRENT_DAYS or None


def _recent(item: f.Comorbidity, on: datetime.date, years: float) -> bool | None:
    if item.active and item.kind not in f.EVENT_KINDS:
        return True  # a lasting condition active now is active within any window
    if item.onset is None:
        return None
    return (on - item.onset).days <= years * 365.25


def _medication_current(
    medication: f.Medication, on: datetime.date, within_days: int | None
) -> bool | None:
    if medication.active:
        return True
    if medication.end is not None:
        if within_days:
            return (on - medication.end).days <= within_days
        return medication.end >= on
    if medication.active is False:
        return False
    return None


def _is_class(treatment: f.Treatment, name: str) -> bool:
    if name == "anticancer":
        return treatment.category in _ANTICANCER
    category = _TREATMENT_CLASSES.get(name)
    if category is not None:
        return treatment.category == category
    if name in _AGENT_CLASSES:
        if treatment.agent_class.lower() == name.lower():
            return True
        drug = drugs().get(treatment.agent.lower())
        return drug is not None and drug.drug_class.lower() == name.lower()
    if name == "investigational":
        return False
    return False


def _within_days(treatment: f.Treatment, on: datetime.date, days: int) -> bool | None:
    if treatment.status == "active":
        return True
    last = treatment.end or treatment.start
    if last is None:
        return None
    return (on - last).days <= days


def _treatment_text(treatment: f.Treatment) -> str:
    name = treatment.agent or treatment.category.value
    when = f", ended {treatment.end}" if treatment.end else ""
    return f"{name}{when}"


@dataclass
class Deciding:
    """An unknown fact and the trials it would decide."""

    fact: str
    trials: list[str] = field(default_factory=list)

    def describe(self) -> str:
        count = len(self.trials)
        return f"{self.fact}: decides {count} trial{'s' if count != 1 else ''}"


def deciding_facts(results: Iterable[MatchResult]) -> list[Deciding]:
    """The unknown facts that block the most flagged or possible trials, most first."""
    by_fact: dict[str, Deciding] = {}
    for result in results:
        if result.verdict is not Verdict.POSSIBLE:
            continue
        for fact in result.unknown_facts:
            by_fact.setdefault(fact, Deciding(fact)).trials.append(result.nct_id)
    return sorted(by_fact.values(), key=lambda d: (-len(d.trials), d.fact))
