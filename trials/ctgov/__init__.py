"""ClinicalTrials.gov API v2: the HTTP client and the mapping of a study record to plain data."""
