"""Criteria parsing throughput over every real record, single core, in trials per second.

    .venv/bin/python bench/criteria_throughput.py [--rounds 5]

Reads every real record bundled in ``trials/data/ctgov`` (each trial once), maps it as the sync
does, then times ``parse_eligibility`` (segmentation, categories, constraints, structured
age/sex criteria) and, separately, parsing plus classification, in one process. Records are
loaded before the clock starts; the first round also warms the lexicon, and is reported apart.
The clock is the process's CPU time, so other work on the machine does not skew the figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.trials.criteria_labels import real_records
from trials.ctgov.mapping import map_study
from trials.eligibility.classify import TrialText, classify
from trials.eligibility.parser import parse_eligibility


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    mapped = [map_study(study) for _, study in real_records()]
    characters = sum(len(trial.eligibility_criteria) for trial in mapped)

    def parse_all(with_classification: bool) -> tuple[float, int]:
        criteria = 0
        started = time.process_time()
        for trial in mapped:
            parsed = parse_eligibility(
                trial.eligibility_criteria,
                minimum_age_years=float(trial.minimum_age.years) if trial.minimum_age else None,
                maximum_age_years=float(trial.maximum_age.years) if trial.maximum_age else None,
                sex=trial.sex,
            ).criteria
            criteria += len(parsed)
            if with_classification:
                classify(
                    TrialText(
                        brief_title=trial.brief_title,
                        official_title=trial.official_title,
                        acronym=trial.acronym,
                        conditions=tuple(trial.conditions),
                        condition_mesh_terms=tuple(trial.condition_mesh_terms),
                        keywords=tuple(trial.keywords),
                        brief_summary=trial.brief_summary,
                        detailed_description=trial.detailed_description,
                        interventions=tuple(trial.interventions),
                        arm_groups=tuple(trial.arm_groups),
                        intervention_mesh_terms=tuple(trial.intervention_mesh_terms),
                        criteria=tuple(parsed),
                    )
                )
        return time.process_time() - started, criteria

    first, criteria = parse_all(False)
    rounds = [parse_all(False)[0] for _ in range(options.rounds)]
    classified = [parse_all(True)[0] for _ in range(options.rounds)]

    count = len(mapped)
    print(f"trials: {count}, criteria: {criteria}, eligibility text: {characters / 1e6:.2f} MB")
    print(f"first round (cold lexicon): {count / first:.0f} trials/s")
    print(
        f"parsing: {count / statistics.median(rounds):.0f} trials/s median of {options.rounds} "
        f"(best {count / min(rounds):.0f}, worst {count / max(rounds):.0f}); "
        f"{criteria / statistics.median(rounds):.0f} criteria/s"
    )
    print(
        f"parsing + classification: {count / statistics.median(classified):.0f} trials/s "
        f"median of {options.rounds}"
    )


if __name__ == "__main__":
    main()
