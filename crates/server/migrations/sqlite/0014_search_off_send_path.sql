-- New messages are indexed for search off the send path (see store/sql/search.rs): an
-- indexer follows the stream past `indexed_through`, and a search takes every message past
-- it as a candidate. Everything written so far was indexed as it was sent.
ALTER TABLE search_state ADD COLUMN indexed_through INTEGER NOT NULL DEFAULT 0;
UPDATE search_state SET indexed_through = (SELECT COALESCE(MAX(pos), 0) FROM events);
