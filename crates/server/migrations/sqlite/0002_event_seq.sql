-- Message events carry their message's `seq`, so a cluster node that sees a gap in a
-- conversation (a NATS message lost or late) can fetch exactly the missing messages' events.
-- (SQLite never runs in a cluster; the column is kept so both backends share one schema.)
ALTER TABLE events ADD COLUMN seq INTEGER;
UPDATE events SET seq = json_extract(payload, '$.message.seq')
    WHERE conversation_id IS NOT NULL AND json_extract(payload, '$.type') = 'message';
CREATE INDEX events_conversation_seq ON events(conversation_id, seq);
