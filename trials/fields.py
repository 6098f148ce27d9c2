"""Model fields of the trials app."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


class SerializedJSON(str):
    """JSON text that is already serialised (and checked): stored as it is."""


class RecordJSONField(models.JSONField):
    """The JSONField for whole registry records, tuned for bulk imports.

    It accepts ``SerializedJSON`` and stores it without encoding again: records are serialised
    once anyway (to hash them), and encoding each a second time on insert was a tenth of an
    import's time. Reading gives the decoded value as usual.
    """

    def get_placeholder(self, value: Any, compiler: Any, connection: BaseDatabaseWrapper) -> str:
        # Defining this keeps PostgreSQL bulk inserts on plain VALUES rows instead of UNNEST
        # arrays: an array of large texts is escaped client-side value by value with regular
        # expressions, which made inserting records several times slower.
        return "%s"

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if isinstance(value, SerializedJSON):
            if connection.vendor == "postgresql":
                from psycopg.types.json import Jsonb

                return Jsonb(value, dumps=str)
            return str(value)
        return super().get_db_prep_value(value, connection, prepared)
