-- A local upload session records its bytes once they are written, before they are synced: a PATCH's `202` promises
-- that the bytes were received, and only the final `201` syncs them. `boot_id` names the machine's boot under
-- which the recorded bytes were written; a session recorded under another boot may have lost unsynced bytes in a
-- machine crash, and is checked against its hash state before it is continued or its offset reported. NULL: every
-- recorded byte was synced (or is in the object store).
ALTER TABLE upload_sessions ADD COLUMN boot_id TEXT;
