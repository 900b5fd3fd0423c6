-- Twins are rewritten by every ingest batch that touches their device. Free space on each
-- page lets PostgreSQL update them in place (HOT: no new index entry, less bloat); with the
-- default fillfactor of 100 most updates had to move the row to another page.
ALTER TABLE device_twins SET (fillfactor = 70);
