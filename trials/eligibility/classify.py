"""Is a trial a gastric-cancer preoperative immunotherapy study? Three questions, each answered
with its evidence (which field, which words), as DOMAIN.md defines them:

1. gastric: gastric or gastroesophageal-junction cancer (not esophageal squamous cancer alone);
2. immunotherapy: an arm gives checkpoint inhibitors, cytokines, vaccines, cell therapy or
   oncolytic viruses (targeted antibodies and chemotherapy are not immunotherapy here);
3. preoperative: given before surgery (neoadjuvant, preoperative, perioperative), not
   adjuvant-only, not advanced or metastatic disease, not surgical technique only.

Titles, conditions, MeSH terms, interventions, arms and summaries speak first. Eligibility
criteria are read too: they confirm the disease, and they are the only evidence left when a
registry record carries no interventions, titles or summary.

Beside the three questions, ``trial_cancer_sites`` reads which cancer sites a trial is for
(stomach, GEJ, oesophagus, another site, or any), the matcher's per-patient pre-filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from trials.eligibility import constraints as c
from trials.eligibility.drugs import find_drugs
from trials.eligibility.extract import negated
from trials.eligibility.lexicon import GroupMatcher, lexicon
from trials.eligibility.parser import Criterion
from trials.eligibility.vocabulary import CancerSite


@dataclass(frozen=True)
class Evidence:
    question: str  # gastric / immunotherapy / preoperative / against
    field: str  # conditions, briefTitle, interventions, eligibility ...
    words: str

    def as_dict(self) -> dict[str, str]:
        return {"question": self.question, "field": self.field, "words": self.words}


@dataclass
class Classification:
    gastric: bool = False
    immunotherapy: bool = False
    preoperative: bool = False
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def gastric_preop_immunotherapy(self) -> bool:
        return self.gastric and self.immunotherapy and self.preoperative

    def as_dict(self) -> dict[str, Any]:
        return {
            "gastric": self.gastric,
            "immunotherapy": self.immunotherapy,
            "preoperative": self.preoperative,
            "gastric_preop_immunotherapy": self.gastric_preop_immunotherapy,
            "evidence": [item.as_dict() for item in self.evidence],
        }


@dataclass(frozen=True)
class TrialText:
    """What the classifier reads of a trial (built from a mapped record or a stored Trial)."""

    brief_title: str = ""
    official_title: str = ""
    acronym: str = ""
    conditions: tuple[str, ...] = ()
    condition_mesh_terms: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    brief_summary: str = ""
    detailed_description: str = ""
    interventions: tuple[dict[str, Any], ...] = ()
    arm_groups: tuple[dict[str, Any], ...] = ()
    intervention_mesh_terms: tuple[str, ...] = ()
    criteria: tuple[Criterion, ...] = ()

    def fields(self) -> Iterable[tuple[str, str]]:
        yield "title", " ".join(filter(None, (self.brief_title, self.official_title, self.acronym)))
        yield (
            "conditions",
            " | ".join((*self.conditions, *self.condition_mesh_terms, *self.keywords)),
        )
        yield "summary", " ".join(filter(None, (self.brief_summary, self.detailed_description)))
        yield (
            "interventions",
            " | ".join(
                " ".join(
                    filter(
                        None,
                        (
                            item.get("name", ""),
                            " ".join(item.get("other_names", ())),
                            item.get("description", ""),
                        ),
                    )
                )
                for item in self.interventions
            ),
        )
        yield (
            "arms",
            " | ".join(
                " ".join(
                    filter(
                        None,
                        (
                            arm.get("label", ""),
                            arm.get("description", ""),
                            " ".join(arm.get("intervention_names", ())),
                        ),
                    )
                )
                for arm in self.arm_groups
            ),
        )
        yield "intervention MeSH", " | ".join(self.intervention_mesh_terms)

    @property
    def describes_treatment(self) -> bool:
        """Does the record say anything about what is given (beyond its eligibility)?"""
        return bool(
            self.brief_title
            or self.official_title
            or self.brief_summary
            or self.interventions
            or self.arm_groups
        )


_GASTRIC = re.compile(
    r"\b(?:gastric|stomach|g/gej|gastro[\s-]?o?esophageal[\s-]+junction|o?esophago[\s-]?gastric"
    r"(?:[\s-]+junction)?|gej|egj|ogj|cardia|siewert|gc)\b",
    re.I,
)
_CANCER = re.compile(
    r"\b(?:cancers?|carcinomas?|adenocarcinomas?|neoplasms?|tumou?rs?|malignan\w*|gc|gejc|"
    r"junction)\b",
    re.I,
)
_NOT_CANCER = re.compile(
    r"\bgastric[\s-]+(?:emptying|tube|acid|ulcer|bypass|residual|volume|type)", re.I
)
_IMMUNO_WORDS = re.compile(
    r"\b(?:anti[\s-]?pd[\s-]?l?1|pd[\s-]?l?1\s+(?:inhibitor|antibod|blockade|blocker|monoclonal)\w*|"
    r"pd-1/pd-l1|anti[\s-]?ctla[\s-]?4|immune\s+checkpoint\w*|checkpoint\s+(?:inhibitor|blockade)\w*|"
    r"immunotherapy|immuno-?therapy|immuno-?chemotherapy|chemo-?immunotherapy|immune\s+therapy|"
    r"cancer\s+vaccine|tumou?r\s+vaccine|"
    r"dendritic\s+cell\s+vaccine|car[\s-]?t\b|tumou?r[\s-]infiltrating\s+lymphocytes|\bcik\b|"
    r"cytokine[\s-]induced\s+killer|oncolytic\s+(?:\w+\s+)?virus\w*|interleukin[\s-]?2|"
    r"\bil[\s-]?2\b|interferon|chimeric\s+antigen\s+receptor|tcr[\s-]?t\b|"
    r"t[\s-]cell\s+receptor[\s-]engineered|(?:targeted|engineered|modified)\s+(?:autologous\s+)?"
    r"t[\s-]?cells?|adoptive\s+(?:cell|t[\s-]?cell)|bispecific\s+t[\s-]cell\s+engager|"
    r"(?:with|plus|and|\+)\s+(?:an?\s+)?(?:anti[\s-]?)?pd[\s-]?l?1\b"
    r"(?!\s*(?:expression|status|positiv|negativ|cps|tps|score|level)))",
    re.I,
)
_PREOP = re.compile(
    r"\b(?:neo[\s-]?adjuvant|pre[\s-]?operative(?:ly)?|peri[\s-]?operative(?:ly)?|"
    r"before\s+(?:surgery|gastrectomy|resection|operation)|prior\s+to\s+(?:surgery|gastrectomy|"
    r"resection|operation)|followed\s+by\s+(?:surgery|gastrectomy|resection|d2)|"
    r"pre[\s-]?surgical)\b",
    re.I,
)
_ADJUVANT_ONLY = re.compile(
    r"\b(?:(?<!neo)(?<!neo-)(?<!peri)(?<!peri-)adjuvant|resected|post[\s-]?operative|"
    r"after\s+(?:radical|curative|d2|r0|complete)?\s*(?:surgery|resection|gastrectomy))\b",
    re.I,
)
_ADVANCED = re.compile(
    r"\b(?:metastatic|unresectable|non[\s-]?resectable|inoperable|recurrent|first[\s-]?line|"
    r"second[\s-]?line|third[\s-]?line|later[\s-]?line|previously\s+treated|refractory|"
    r"stage\s+iv|peritoneal\s+metasta\w*)\b",
    re.I,
)
# "Advanced gastric cancer" often means locally advanced when the title also says neoadjuvant.
_ADVANCED_WEAK = re.compile(r"\b(?<!locally\s)advanced\b", re.I)
_RESECTABLE_TITLE = re.compile(r"\b(?:resectable|operable|localized|localised)\b", re.I)


def classify(trial: TrialText) -> Classification:
    """The three answers and the evidence for each."""
    result = Classification()
    fields = [(name, text) for name, text in trial.fields() if text]
    result.gastric = _gastric(fields, trial.criteria, result.evidence)
    result.immunotherapy = _immunotherapy(fields, trial, result.evidence)
    result.preoperative = _preoperative(fields, trial, result.evidence, result.immunotherapy)
    return result


def _gastric(
    fields: list[tuple[str, str]], criteria: tuple[Criterion, ...], evidence: list[Evidence]
) -> bool:
    for name, text in fields:
        if name not in ("title", "conditions", "summary"):
            continue
        for match in _GASTRIC.finditer(text):
            if _NOT_CANCER.match(text, match.start()):
                continue
            window = text[max(0, match.start() - 60) : match.end() + 60]
            if name == "conditions" or _CANCER.search(window):
                evidence.append(Evidence("gastric", name, _words(text, match)))
                return True
    for criterion in criteria:
        if criterion.kind != "inclusion":
            continue
        for constraint in criterion.constraints:
            if isinstance(constraint, c.PrimarySite) and {"stomach", "gej"} & set(
                constraint.any_of
            ):
                evidence.append(Evidence("gastric", "eligibility", criterion.text[:120]))
                return True
    # A trial of several cancers that names gastric cancer among those it enrols.
    for criterion in criteria:
        if criterion.kind != "inclusion":
            continue
        for match in _GASTRIC.finditer(criterion.text):
            if _NOT_CANCER.match(criterion.text, match.start()):
                continue
            if _CANCER_AFTER_SITE.match(criterion.text, match.end()) and not (
                negated(criterion.text, match.start(), match.end())
            ):
                evidence.append(Evidence("gastric", "eligibility", _words(criterion.text, match)))
                return True
    return False


# A cancer word right after the site, up to two words between: "gastric (GEJ) adenocarcinoma".
_CANCER_AFTER_SITE = re.compile(
    r"(?:[\s/(),-]+[\w.&]+){0,2}?[\s/(),-]+" + _CANCER.pattern.removeprefix(r"\b"), re.I
)


# --- The cancer sites a trial is for ------------------------------------------------------

_UPPER_GI = frozenset({CancerSite.STOMACH, CancerSite.GEJ, CancerSite.ESOPHAGUS})
_GASTRIC_SITES = frozenset({CancerSite.STOMACH, CancerSite.GEJ})


@cache
def _site_words() -> GroupMatcher:
    """The words of the lexicon's ``sites`` (the ones criteria are read with) and of its
    ``trial_sites`` (site families, any site, other sites), found in one pass: at a place the
    longest word wins, so "gastroesophageal junction" is the junction, not the family."""
    return GroupMatcher({**lexicon()["sites"], **lexicon()["trial_sites"]})


def trial_cancer_sites(
    conditions: Iterable[str],
    mesh_terms: Iterable[str] = (),
    titles: Iterable[str] = (),
    *,
    gastric: bool = False,
) -> frozenset[CancerSite]:
    """The cancer sites a trial is for, read from its record; empty: any site, or not known.

    The conditions and their MeSH terms speak first; the titles only when those name no site.
    A word for every site (solid tumours, gastrointestinal, basket, tumour-agnostic) makes the
    trial one for any site. Words for the upper gastrointestinal family ("gastroesophageal
    cancer", "oesogastric") name the stomach, the junction and the oesophagus; a cancer of
    another organ ("pancreatic cancer", "breast neoplasms", "leukaemia") names another site;
    words that name no site ("adenocarcinoma", "advanced cancer", "surgery") name nothing.
    ``gastric`` (the trial is classified gastric / GEJ, or flagged as the program's) adds the
    stomach and the junction. A trial that names nothing is for any site: it is never
    filtered out.
    """
    sites = _named_sites(conditions, mesh_terms)
    if sites is None:
        return frozenset()
    if not sites:
        sites = _named_sites(titles)
        if sites is None:
            return frozenset()
    if gastric:
        sites |= _GASTRIC_SITES
    return frozenset(sites)


def _named_sites(*groups: Iterable[str]) -> set[CancerSite] | None:
    """The sites these texts name (None: a word for any site)."""
    words = _site_words()
    sites: set[CancerSite] = set()
    for group in groups:
        for text in group:
            if not isinstance(text, str) or not text:
                continue
            for match in words.pattern.finditer(text):
                for concept in words.concepts(match.group(0)):
                    if concept == "any":
                        return None
                    if concept == "upper_gi":
                        sites |= _UPPER_GI
                    elif concept == "other_cancer":
                        sites.add(CancerSite.OTHER)
                    elif concept == "other_organ":
                        if _CANCER.search(text):  # "pancreatic cancer", not "... insufficiency"
                            sites.add(CancerSite.OTHER)
                    elif concept in _SITE_VALUES:
                        sites.add(CancerSite(concept))
                    elif _CANCER.search(text):
                        sites.add(CancerSite.OTHER)  # a site beyond the upper GI tract
    return sites


_SITE_VALUES = frozenset(site.value for site in CancerSite)


def _immunotherapy(
    fields: list[tuple[str, str]], trial: TrialText, evidence: list[Evidence]
) -> bool:
    for name, text in fields:
        if name == "intervention MeSH" and "immune checkpoint inhibitors" in text.lower():
            evidence.append(Evidence("immunotherapy", name, "Immune Checkpoint Inhibitors"))
            return True
        drugs = [drug for drug in find_drugs(text) if drug.category == "immunotherapy"]
        if drugs:
            evidence.append(
                Evidence(
                    "immunotherapy", name, ", ".join(f"{d.name} ({d.drug_class})" for d in drugs)
                )
            )
            return True
        match = _IMMUNO_WORDS.search(text)
        if match and name != "intervention MeSH":
            evidence.append(Evidence("immunotherapy", name, _words(text, match)))
            return True
    if not trial.describes_treatment:
        # Nothing says what is given: a checkpoint-inhibitor selection marker required for entry
        # (PD-L1 CPS, MSI-H / dMMR) is the remaining sign of an immunotherapy trial.
        for criterion in trial.criteria:
            for constraint in criterion.constraints:
                if (
                    criterion.kind == "inclusion"
                    and isinstance(constraint, c.Biomarker)
                    and (
                        constraint.marker == "pdl1_cps"
                        or set(constraint.any_of) & {"MSI-H", "dMMR"}
                    )
                ):
                    evidence.append(
                        Evidence(
                            "immunotherapy",
                            "eligibility (no interventions in the record)",
                            criterion.text[:120],
                        )
                    )
                    return True
    return False


def _preoperative(
    fields: list[tuple[str, str]], trial: TrialText, evidence: list[Evidence], drug_trial: bool
) -> bool:
    preop = [(name, m) for name, text in fields for m in [_PREOP.search(text)] if m]
    title_text = next((text for name, text in fields if name == "title"), "")
    against: list[Evidence] = []
    title_preop = _PREOP.search(title_text)
    advanced_title = _ADVANCED.search(title_text) or (
        None if title_preop else _ADVANCED_WEAK.search(title_text)
    )
    if advanced_title:
        against.append(Evidence("against", "title", _words(title_text, advanced_title)))
    if _requires_metastasis(trial.criteria):
        against.append(Evidence("against", "eligibility", "metastatic disease required"))
    adjuvant_title = _ADJUVANT_ONLY.search(title_text)
    if adjuvant_title and not title_preop:
        against.append(Evidence("against", "title", _words(title_text, adjuvant_title)))
    if preop:
        name, match = preop[0]
        text = next(text for field_name, text in fields if field_name == name)
        evidence.append(Evidence("preoperative", name, _words(text, match)))
        evidence.extend(against)
        return not against
    resectable = _RESECTABLE_TITLE.search(title_text)
    if resectable and (drug_trial or _gives_drugs(trial)):
        # A treatment trial in resectable disease that is not adjuvant comes before surgery.
        evidence.append(Evidence("preoperative", "title", _words(title_text, resectable)))
        evidence.extend(against)
        return not against
    if not trial.describes_treatment and _untreated_before_surgery(trial.criteria):
        evidence.append(
            Evidence(
                "preoperative",
                "eligibility (no interventions in the record)",
                "untreated, resectable disease heading for surgery",
            )
        )
        evidence.extend(against)
        return not against
    evidence.extend(against)
    return False


def _gives_drugs(trial: TrialText) -> bool:
    return any(item.get("type") in ("DRUG", "BIOLOGICAL") for item in trial.interventions)


def _requires_metastasis(criteria: tuple[Criterion, ...]) -> bool:
    return any(
        criterion.kind == "inclusion"
        and isinstance(constraint, c.Metastasis)
        and constraint.present
        and constraint.site in ("distant", "peritoneal")
        and criterion.join != "any"
        for criterion in criteria
        for constraint in criterion.constraints
    )


def _untreated_before_surgery(criteria: tuple[Criterion, ...]) -> bool:
    untreated = surgery = False
    for criterion in criteria:
        if criterion.kind != "inclusion":
            continue
        for constraint in criterion.constraints:
            if isinstance(constraint, c.PriorTherapy) and not constraint.present:
                untreated = True
            if isinstance(constraint, c.Resectable) and constraint.value:
                surgery = True
            if isinstance(constraint, c.Surgery) and constraint.status == "planned":
                surgery = True
    return untreated and surgery


def _words(text: str, match: re.Match[str]) -> str:
    """The match with a little context, as a coordinator would quote it."""
    start = max(0, match.start() - 30)
    end = min(len(text), match.end() + 30)
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")
