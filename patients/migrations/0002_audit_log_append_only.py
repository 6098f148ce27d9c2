"""The audit log is append-only, enforced by the database itself.

PostgreSQL: row triggers refuse UPDATE and DELETE on auditlog_logentry (TRUNCATE, which only
the table owner may run, stays possible for retention maintenance). SQLite (the embedded
single-machine default) refuses UPDATE; DELETE stays possible there because Django's own
test and flush machinery empties tables with DELETE.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION trialmatch_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER auditlog_logentry_append_only
    BEFORE UPDATE OR DELETE ON auditlog_logentry
    FOR EACH ROW EXECUTE FUNCTION trialmatch_audit_append_only();
"""
POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS auditlog_logentry_append_only ON auditlog_logentry;
DROP FUNCTION IF EXISTS trialmatch_audit_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER auditlog_logentry_no_update BEFORE UPDATE ON auditlog_logentry
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE is not allowed'); END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS auditlog_logentry_no_update;"


def forward(apps, schema_editor):
    sql = POSTGRES_FORWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_FORWARD
    schema_editor.execute(sql, params=None)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    schema_editor.execute(
        POSTGRES_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD, params=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0001_initial"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(forward, backward)]
