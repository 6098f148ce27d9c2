"""The pre-screening pages: an introduction, five short steps, the results, and the request
to be contacted.

The answers live in the visitor's server-side session only (never in hidden fields). The
results are computed from them on each view and stored nowhere; their page is reached by an
unguessable token that belongs to the session and expires (``PRESCREEN_RESULT_TTL_SECONDS``).
Every page is private (not cached, not indexed); every POST is rate limited and checked
against bots (``guard``).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from config.sessions import anonymous_idle_seconds
from patients.matching import evaluate_with, rules_cache
from patients.prescreen import guard
from patients.prescreen.questions import (
    STEP_SLUGS,
    STEPS,
    Answers,
    ContactForm,
    StepForm,
    facts_from_answers,
    summary,
    travel_limit_km,
)
from patients.prescreen.referral import (
    Contact,
    contact_keys,
    count,
    create_referral_unless_recent,
)
from trials.eligibility.evaluate import (
    OPEN_STATUSES,
    MatchResult,
    PatientEvaluator,
    TrialRules,
    Verdict,
    rank_key,
)
from trials.eligibility.geo import haversine_km, km_to_miles
from trials.eligibility.units import ANALYTE_LABELS
from trials.models import Trial, TrialSite

logger = logging.getLogger(__name__)

SESSION_KEY = "prescreen"
MESSAGE_NOT_STORED = (
    "Sorry, we could not send your request just now, and nothing was saved. Your answers and "
    "details are still here: please try again in a few minutes."
)
DEFAULT_RESULT_TTL_SECONDS = 3600
MAX_RESULT_TOKENS = 5
MAX_TOKEN_LENGTH = 64
CONTACT_PURPOSE = "contact"  # what the contact form's token is for (the steps: "step-N")


# --- session state -----------------------------------------------------------------------------


def _answers_held(request: HttpRequest) -> Answers:
    """The answers so far, read without writing anything: a visitor who only looks gets no
    session (no row in the session table, no cookie)."""
    state = request.session.get(SESSION_KEY)
    answers = state.get("answers") if isinstance(state, dict) else None
    return answers if isinstance(answers, dict) else {}


def _state(request: HttpRequest) -> dict[str, Any]:
    """The session's form state, created when missing (only when something is to be kept)."""
    state = request.session.get(SESSION_KEY)
    if not isinstance(state, dict):
        state = {"answers": {}, "results": {}}
        request.session[SESSION_KEY] = state
    state.setdefault("answers", {})
    state.setdefault("results", {})
    return state


def _result_ttl() -> int:
    return int(getattr(settings, "PRESCREEN_RESULT_TTL_SECONDS", DEFAULT_RESULT_TTL_SECONDS))


def _new_result_token(request: HttpRequest, answers: Answers) -> str:
    """A results token for this session, holding the answers it shows; older ones go."""
    state = _state(request)
    now = time.time()
    results = {
        token: held
        for token, held in state["results"].items()
        if isinstance(held, dict) and held.get("expires", 0) > now
    }
    token = secrets.token_urlsafe(24)
    results[token] = {"answers": answers, "expires": now + _result_ttl(), "reference": ""}
    newest = sorted(results.items(), key=lambda item: item[1]["expires"])[-MAX_RESULT_TOKENS:]
    state["results"] = dict(newest)
    request.session.modified = True
    return token


def _held_result(request: HttpRequest, token: str) -> dict[str, Any] | None:
    """The session's result behind ``token``, or None (not this session's, or expired)."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    state = request.session.get(SESSION_KEY)
    if not isinstance(state, dict):
        return None
    held = (state.get("results") or {}).get(token)
    if not isinstance(held, dict) or held.get("expires", 0) <= time.time():
        return None
    return held


def _gone(request: HttpRequest) -> HttpResponse:
    return render(request, "prescreen/gone.html", status=404)


# --- the pages -------------------------------------------------------------------------------


@guard.private_page
@require_http_methods(["GET", "HEAD"])
def intro(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "prescreen/intro.html",
        {"steps": len(STEPS), "idle_minutes": max(1, anonymous_idle_seconds() // 60)},
    )


@guard.private_page
@guard.rate_limited
@require_POST
def restart(request: HttpRequest) -> HttpResponse:
    """Forget every answer and result of this session (a shared device, a new start)."""
    request.session.pop(SESSION_KEY, None)
    return redirect("prescreen:intro")


@guard.private_page
@guard.rate_limited
@require_http_methods(["GET", "HEAD", "POST"])
def step(request: HttpRequest, number: int) -> HttpResponseBase:
    if not 1 <= number <= len(STEPS):
        raise Http404("no such step")
    answers = _answers_held(request)
    first_missing = next(
        (i for i, slug in enumerate(STEP_SLUGS, 1) if slug not in answers), len(STEPS) + 1
    )
    if number > first_missing:
        return redirect("prescreen:step", number=first_missing)
    form_class = STEPS[number - 1]
    refusal = None
    if request.method == "POST":
        form = form_class(request.POST)
        # The first step is the page a new visitor arrives at, before they have a session.
        refusal = guard.check_submission(request, _step_purpose(number), new_visitor=number == 1)
        if refusal == guard.MESSAGE_USED and _was_accepted(request, number):
            # The same page sent twice from this session (a double click) and the first was
            # taken: the visitor moves on as it did; this one's values are not stored.
            return _after_step(request, number, answers)
        if refusal is None and form.is_valid():
            state = _state(request)
            answers = state["answers"]
            answers[form_class.slug] = form.answers()
            state["accepted"] = {
                **(state.get("accepted") or {}),
                str(number): guard.submitted_nonce(request),
            }
            # "Started": the first step answered (counting page views would count reloads,
            # since looking keeps nothing that could tell them apart).
            if not state.get("counted"):
                state["counted"] = True
                count("started")
            request.session.modified = True
            if number == len(STEPS):
                count("completed")
            return _after_step(request, number, answers)
    else:
        form = form_class(initial=answers.get(form_class.slug))
    return _render_step(request, form, number, refusal)


def _step_purpose(number: int) -> str:
    return f"step-{number}"


def _was_accepted(request: HttpRequest, number: int) -> bool:
    """Whether the token sent is the one whose submission of step ``number`` was stored."""
    state = request.session.get(SESSION_KEY)
    accepted = state.get("accepted") if isinstance(state, dict) else None
    nonce = guard.submitted_nonce(request)
    return bool(nonce) and isinstance(accepted, dict) and accepted.get(str(number)) == nonce


def _after_step(request: HttpRequest, number: int, answers: Answers) -> HttpResponse:
    """Where an answered step leads: the next step, or after the last one the results."""
    if number < len(STEPS):
        return redirect("prescreen:step", number=number + 1)
    return redirect("prescreen:results", token=_new_result_token(request, answers))


def _render_step(
    request: HttpRequest, form: StepForm, number: int, refusal: str | None
) -> HttpResponse:
    questions = form.questions()  # sets the inputs' aria attributes: before rendering
    errors = form.error_summary()
    title = f"Step {number} of {len(STEPS)}: {form.title}"
    return render(
        request,
        "prescreen/step.html",
        {
            "form": form,
            "questions": questions,
            "errors": errors,
            "refusal": refusal,
            "number": number,
            "total": len(STEPS),
            "steps": list(range(1, len(STEPS) + 1)),
            "title": ("Error: " if errors or refusal else "") + title,
            "previous": number - 1 if number > 1 else None,
            "last": number == len(STEPS),
            "form_token": guard.new_form_token(request, _step_purpose(number)),
            "token_field": guard.FORM_TOKEN_FIELD,
            "honeypot_field": guard.HONEYPOT_FIELD,
        },
        status=200,
    )


@guard.private_page
@require_http_methods(["GET", "HEAD"])
def results(request: HttpRequest, token: str) -> HttpResponse:
    held = _held_result(request, token)
    if held is None:
        return _gone(request)
    if _sent(held):
        return redirect("prescreen:thanks", token=token)
    return _render_results(request, token, held, ContactForm(), None)


@guard.private_page
@guard.rate_limited
@require_http_methods(["GET", "HEAD", "POST"])
def contact(request: HttpRequest, token: str) -> HttpResponseBase:
    held = _held_result(request, token)
    if held is None:
        return _gone(request)
    if request.method != "POST" or _sent(held):
        return redirect("prescreen:results", token=token)
    form = ContactForm(request.POST)
    refusal = guard.check_submission(request, CONTACT_PURPOSE)
    if refusal is None and form.is_valid():
        data = form.cleaned_data
        contact = Contact(
            name=data["name"],
            email=data["email"],
            phone=data["phone"],
            preferred_contact_time=form.contact_time_label(),
        )
        wait = guard.referral_retry_after(request, contact_keys(contact))
        if wait is not None:
            response = _render_results(
                request, token, held, form, guard.referral_refusal(wait), status=429
            )
            response["Retry-After"] = str(wait)
            return response
        try:
            code = create_referral_unless_recent(
                held["answers"], contact, today=timezone.localdate()
            )
        except Exception:
            # Nothing was stored (the referral and its matching are one transaction); the
            # answers and the typed details stay on the page for another try.
            logger.exception("web referral not stored: it failed while being written")
            return _render_results(request, token, held, form, MESSAGE_NOT_STORED, status=503)
        if code is None:
            held["received_before"] = True  # a request with these details arrived recently
        else:
            held["reference"] = code
        request.session.modified = True
        return redirect("prescreen:thanks", token=token)
    return _render_results(request, token, held, form, refusal)


def _sent(held: dict[str, Any]) -> bool:
    """Whether the request to be contacted of these results was taken (stored, or found to
    repeat a recent one)."""
    return bool(held.get("reference") or held.get("received_before"))


@guard.private_page
@require_http_methods(["GET", "HEAD"])
def thanks(request: HttpRequest, token: str) -> HttpResponse:
    held = _held_result(request, token)
    if held is None or not _sent(held):
        return _gone(request)
    # A repeat shows no reference code: the earlier request may be someone else's.
    reference = held.get("reference")
    return render(
        request, "prescreen/thanks.html", {"reference": "WEB-" + reference if reference else ""}
    )


RESULTS_SHOWN = 20


def _render_results(
    request: HttpRequest,
    token: str,
    held: dict[str, Any],
    form: ContactForm,
    refusal: str | None,
    *,
    status: int = 200,
) -> HttpResponse:
    # The best RESULTS_SHOWN first (a phone screen, an anxious reader); the rest one link away.
    show_all = request.GET.get("all") == "1"
    found = trial_results(held["answers"], shown=None if show_all else RESULTS_SHOWN)
    shown = found.listed
    questions = form.questions()
    errors = form.error_summary()
    return render(
        request,
        "prescreen/results.html",
        {
            "results": found,
            "shown": shown,
            "more": found.listed_total - len(shown),
            "told": summary(held["answers"]),
            "form": form,
            "questions": questions,
            "errors": errors,
            "refusal": refusal,
            "title": ("Error: " if errors or refusal else "") + "Trials that may suit you",
            "token": token,
            "form_token": guard.new_form_token(request, CONTACT_PURPOSE),
            "token_field": guard.FORM_TOKEN_FIELD,
            "honeypot_field": guard.HONEYPOT_FIELD,
            "privacy_contact": getattr(settings, "PRESCREEN_PRIVACY_CONTACT", "")
            or settings.DEFAULT_FROM_EMAIL,
            "retention": getattr(settings, "PRESCREEN_RETENTION_TEXT", "12 months"),
        },
        status=status,
    )


# --- the results -----------------------------------------------------------------------------

STATUS_WORDS = {
    "RECRUITING": "Looking for people to take part now",
    "NOT_YET_RECRUITING": "Will start looking for people soon",
    "ENROLLING_BY_INVITATION": "Taking part by invitation only",
}
PHASE_WORDS = {
    "EARLY_PHASE1": "Early phase 1 (a first small test)",
    "PHASE1": "Phase 1 (tests safety and dose)",
    "PHASE2": "Phase 2 (tests whether it works and is safe)",
    "PHASE3": "Phase 3 (compares it with the usual treatment)",
    "PHASE4": "Phase 4 (studies an approved treatment further)",
    "NA": "",
}
# Why a criterion seems met, by its category, in plain words.
FIT_WORDS = {
    "age": "Your age is within the trial's age range.",
    "sex": "The trial is open to people of your sex.",
    "diagnosis": "The cancer is in the place this trial is for.",
    "histology": "The type of cancer is the one this trial is for.",
    "stage": "The stage is one this trial is for.",
    "metastasis": "Whether the cancer has spread fits what this trial asks.",
    "resectability": "What you told us suggests the cancer can be removed by an operation.",
    "performance_status": "How active you are day to day fits what this trial asks.",
    "prior_therapy": "Your past treatment fits what this trial asks.",
    "comorbidity": "You do not have a health condition this trial leaves out.",
    "medication": "You do not take a medicine this trial leaves out.",
    "pregnancy": "Pregnancy does not stand in the way.",
    "surgery": "What you told us about an operation fits what this trial asks.",
}
# What stays open, in plain words: "Your doctor can tell you ...".
OPEN_WORDS = {
    "birth date": "your age",
    "sex": "your sex as recorded by the hospital",
    "ECOG performance status": "how active you are (your ECOG score)",
    "Karnofsky score": "how active you are (your Karnofsky score)",
    "clinical T stage": "your stage (the T number)",
    "clinical N stage": "your stage (the N number)",
    "clinical M stage": "whether the cancer has spread",
    "clinical stage group": "your stage",
    "primary tumour site": "where the cancer started",
    "histology": "the type of cancer (it is on the lab report)",
    "Siewert type": "the Siewert type of a tumour where the stomach meets the food pipe",
    "planned or done surgery": "whether an operation to remove the cancer is planned",
    "prior surgery": "whether you have had an operation for this cancer",
    "recent surgery": "whether you have had an operation recently",
    "date of surgery": "when you had your operation",
    "pregnancy status": "whether pregnancy or breastfeeding matters here",
    "HER2 status": "your HER2 test result",
    "HER2 ISH": "your HER2 test result",
    "PD-L1 CPS": "your PD-L1 test result",
    "MSI status": "your MSI test result",
    "mismatch-repair status": "your MMR test result",
    "Claudin 18.2 status": "your Claudin 18.2 test result",
    "EBV status": "your EBV test result",
    "systemic corticosteroids": "whether you take steroid medicine",
    "immunosuppressants": "whether you take medicine that calms the immune system",
    "live vaccines": "whether you had a live vaccine recently",
    "autoimmune disease": "whether you have an autoimmune disease",
    "interstitial lung disease / pneumonitis": "whether you have lung inflammation",
    "hepatitis B": "whether you have hepatitis B",
    "hepatitis C": "whether you have hepatitis C",
    "HIV": "whether you have HIV",
    "organ transplant": "whether you had an organ transplant",
    "allogeneic stem-cell transplant": "whether you had a stem-cell transplant from a donor",
    "another malignancy": "whether you have had another cancer",
    "Gilbert syndrome": "whether you have Gilbert syndrome",
    "heart failure": "whether you have heart failure",
    "cardiac arrhythmia": "whether you have an irregular heartbeat",
    # Events: what matters is whether and when they happened.
    "myocardial infarction": "whether you have had a heart attack, and when",
    "myocardial infarction: activity and onset": "whether you have had a heart attack, and when",
    "unstable angina": "whether you have had unstable angina (chest pain at rest), and when",
    "unstable angina: activity and onset": "whether you have had unstable angina (chest pain "
    "at rest), and when",
    "stroke or transient ischaemic attack": "whether you have had a stroke or a mini-stroke, "
    "and when",
    "stroke or transient ischaemic attack: activity and onset": "whether you have had a stroke "
    "or a mini-stroke, and when",
    "arterial thromboembolism": "whether you have had a blood clot in an artery, and when",
    "arterial thromboembolism: activity and onset": "whether you have had a blood clot in an "
    "artery, and when",
    "venous thromboembolism (DVT / PE)": "whether you have had a blood clot in a vein or the "
    "lungs, and when",
    "venous thromboembolism (DVT / PE): activity and onset": "whether you have had a blood clot "
    "in a vein or the lungs, and when",
    # Measurements that are not blood tests.
    "urine protein (24-hour)": "your recent urine test results",
    "left ventricular ejection fraction": "the result of your heart scan (echocardiogram)",
    "QTc (corrected QT interval)": "the result of your heart tracing (ECG)",
}
_BLOOD_TESTS = (set(ANALYTE_LABELS.values()) - set(OPEN_WORDS)) | {
    "creatinine clearance (or weight and serum creatinine)"
}


def open_question(fact: str) -> str:
    """An unknown fact as "Your doctor can tell you ..."."""
    if fact in _BLOOD_TESTS:
        words = "your recent blood test results"
    elif fact.startswith(("prior ", "dates of prior")):
        words = "which treatments you have had, and when"
    elif fact.endswith(" metastasis"):
        words = "where the cancer has spread, if it has"
    elif fact in OPEN_WORDS:
        words = OPEN_WORDS[fact]
    elif fact.endswith(": activity and onset") and fact[:-20] in OPEN_WORDS:
        words = OPEN_WORDS[fact[:-20]] + ", and whether it is active now"
    else:
        words = f"more about this: {fact}"
    return f"Your doctor can tell you {words}."


@dataclass
class SiteShown:
    name: str
    place: str
    km: float | None

    @property
    def miles(self) -> float | None:
        return round(km_to_miles(self.km), 1) if self.km is not None else None


@dataclass
class TrialShown:
    nct_id: str
    title: str
    phase: str
    status: str
    flagged: bool
    flag_note: str
    fits: str  # how well, in words
    site: SiteShown | None
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://clinicaltrials.gov/study/{self.nct_id}"


@dataclass
class Results:
    listed: list[TrialShown]  # the best ones, as many as the page shows
    listed_total: int  # all that may fit within reach
    out_of_reach: list[TrialShown]
    checked: int
    left_out: int
    location_known: bool
    travel_km: float | None

    @property
    def travel_miles(self) -> float | None:
        return round(km_to_miles(self.travel_km)) if self.travel_km is not None else None


def trial_results(answers: Answers, shown: int | None = None) -> Results:
    """The open trials against the answers, evaluated as the matcher evaluates them (a trial
    for another cancer than the visitor's has its disease criteria read first): the ones not
    ruled out, best first
    (flagged preoperative immunotherapy trials on top), those beyond the travel limit apart.

    ``shown``: how many of the listed trials the page shows (None: all); only those and the
    out-of-reach ones (all shown) are described and get their nearest site looked up.
    """
    today = timezone.localdate()
    facts = facts_from_answers(answers, today)
    evaluated = evaluate_with(PatientEvaluator(facts, today), rules_cache().rules())
    fitting = [(rules, result) for rules, result in evaluated if result.verdict != "ineligible"]
    fitting.sort(key=lambda pair: rank_key(pair[1], pair[0]))
    limit = travel_limit_km(answers)
    near: list[tuple[TrialRules, MatchResult]] = []
    far: list[tuple[TrialRules, MatchResult]] = []
    for rules, result in fitting:
        beyond = limit is not None and result.distance_km is not None and result.distance_km > limit
        (far if beyond else near).append((rules, result))
    trials = Trial.objects.only(*SHOWN_TRIAL_FIELDS).in_bulk([rules.key for rules, _ in fitting])
    rendered = near[:shown] if shown is not None else near  # (a few may be gone since)
    sites = _nearest_sites(facts.location, [rules.key for rules, _ in rendered + far])
    near = [(rules, result) for rules, result in near if rules.key in trials]
    listed = [
        _shown(trials[rules.key], rules, result, sites.get(rules.key))
        for rules, result in (near[:shown] if shown is not None else near)
    ]
    out_of_reach = [
        _shown(trials[rules.key], rules, result, sites.get(rules.key))
        for rules, result in far
        if rules.key in trials
    ]
    return Results(
        listed=listed,
        listed_total=len(near),
        out_of_reach=out_of_reach,
        checked=len(evaluated),
        left_out=len(evaluated) - len(fitting),
        location_known=facts.location is not None,
        travel_km=limit,
    )


# What the results page shows of a trial (not its record as received, nor its texts).
SHOWN_TRIAL_FIELDS = ("nct_id", "brief_title", "official_title", "overall_status")


def _shown(
    trial: Trial, rules: TrialRules, result: MatchResult, site: SiteShown | None
) -> TrialShown:
    reasons: list[str] = []
    details: list[str] = []
    for criterion in result.criteria:
        if not criterion.satisfied or not criterion.parsed:
            continue
        words = FIT_WORDS.get(criterion.category)
        if words and words not in reasons:
            reasons.append(words)
        if criterion.reason and criterion.reason not in details:
            details.append(criterion.reason)
    questions: list[str] = []
    for fact in result.unknown_facts:
        sentence = open_question(fact)
        if sentence not in questions:
            questions.append(sentence)
    if result.verdict == Verdict.ELIGIBLE:
        fits = "Fits everything you told us. A coordinator still has to check."
    else:
        fits = "May fit: some questions are still open."
    flag_note = ""
    if result.flagged:
        flag_note = (
            "This trial gives immunotherapy before an operation to remove the cancer. "
            "It is shown first because it may suit people whose cancer can be removed."
        )
        if "to confirm" in result.flag_reason:
            flag_note += " Your doctor needs to confirm that such an operation is possible."
    phases = [PHASE_WORDS.get(phase, phase) for phase in rules.phases]
    return TrialShown(
        nct_id=trial.nct_id,
        title=trial.title or trial.nct_id,
        phase=", ".join(p for p in phases if p),
        status=STATUS_WORDS.get(trial.overall_status, trial.overall_status.replace("_", " ")),
        flagged=result.flagged,
        flag_note=flag_note,
        fits=fits,
        site=site,
        reasons=reasons,
        details=details,
        open_questions=questions,
    )


def _nearest_sites(location: Any, trial_ids: list[int]) -> dict[int, SiteShown]:
    """Each trial's nearest site (open sites when statuses are given), when both are located."""
    if location is None or not trial_ids:
        return {}
    by_trial: dict[int, list[TrialSite]] = {}
    for site in TrialSite.objects.filter(
        trial_id__in=trial_ids, latitude__isnull=False, longitude__isnull=False
    ).only("trial_id", "facility", "city", "country", "latitude", "longitude", "status"):
        by_trial.setdefault(site.trial_id, []).append(site)
    nearest: dict[int, SiteShown] = {}
    for trial_id, sites in by_trial.items():
        with_status = [s for s in sites if s.status]
        chosen = [s for s in with_status if s.status in OPEN_STATUSES] if with_status else sites
        best: tuple[float, TrialSite] | None = None
        for site in chosen:
            assert site.latitude is not None
            assert site.longitude is not None
            km = haversine_km(location.latitude, location.longitude, site.latitude, site.longitude)
            if math.isfinite(km) and (best is None or km < best[0]):
                best = (km, site)
        if best is not None:
            km, site = best
            where = ", ".join(part for part in (site.city, site.country) if part)
            nearest[trial_id] = SiteShown(
                name=site.facility or where,
                place=where,
                km=round(km, 1) if math.isfinite(km) else None,
            )
    return nearest
