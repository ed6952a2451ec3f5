-- A message row knows its event's stream position, so a cluster node filling a gap reads
-- messages by (conversation_id, seq) through the messages' own unique index, and the events
-- table no longer needs an index on (conversation_id, seq): one index fewer for every
-- message written. (Rewrites every message row once.)
ALTER TABLE messages ADD COLUMN pos BIGINT;
UPDATE messages m SET pos = e.pos FROM events e
    WHERE e.conversation_id = m.conversation_id AND e.seq = m.seq;
DROP INDEX events_conversation_seq;
