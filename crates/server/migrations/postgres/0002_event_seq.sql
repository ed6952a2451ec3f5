-- Message events carry their message's `seq`, so a cluster node that sees a gap in a
-- conversation (a NATS message lost or late) can fetch exactly the missing messages' events.
ALTER TABLE events ADD COLUMN seq BIGINT;
UPDATE events SET seq = ((payload::jsonb) -> 'message' ->> 'seq')::BIGINT
    WHERE conversation_id IS NOT NULL AND (payload::jsonb) ->> 'type' = 'message';
CREATE INDEX events_conversation_seq ON events(conversation_id, seq);
