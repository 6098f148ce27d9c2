"""Trials: ClinicalTrials.gov records, their eligibility criteria and the matching engine."""
