-- schema_migrations replaces the single version row.
DROP TABLE IF EXISTS schema_meta;
