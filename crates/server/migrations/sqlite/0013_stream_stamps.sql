-- Nothing changes here: SQLite has one writer, which commits in the order it writes, so an
-- event's `pos` is its stream position (PostgreSQL stamps positions after commit; see
-- migrations/postgres/0013). This file keeps the two migration histories in step.
SELECT 1;
