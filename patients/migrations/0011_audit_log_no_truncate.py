"""TRUNCATE cannot empty the audit log either (PostgreSQL).

The row triggers of 0002 refuse UPDATE and DELETE, but TRUNCATE fires no row trigger: one
statement emptied the log. A statement trigger now refuses it too, unless the session says it
is the deliberate, documented retention step (``SET trialmatch.audit_truncate = 'allowed'``,
docs/audit-log.md). SQLite has no TRUNCATE.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION trialmatch_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('trialmatch.audit_truncate', true) = 'allowed' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: TRUNCATE is not allowed';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER auditlog_logentry_no_truncate
    BEFORE TRUNCATE ON auditlog_logentry
    FOR EACH STATEMENT EXECUTE FUNCTION trialmatch_audit_no_truncate();
"""
POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS auditlog_logentry_no_truncate ON auditlog_logentry;
DROP FUNCTION IF EXISTS trialmatch_audit_no_truncate();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("patients", "0010_immunodeficiency_and_infection_kinds")]

    operations = [migrations.RunPython(forward, backward)]
