"""Patients: clinical profiles, their matches against trials, referrals and the audit trail."""
