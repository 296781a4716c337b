-- PostgreSQL form of migrations/sqlite/0006_blob_locations.sql.
ALTER TABLE blobs ADD COLUMN location TEXT COLLATE "C";
