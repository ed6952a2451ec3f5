-- A message's event no longer carries a second, encrypted copy of the message: its payload is
-- empty and the event refers to the message row by (conversation_id, seq), which `sync` and
-- the cluster's gap filling read (so they also show the message as it is now: edited, or
-- deleted without its text). Events written before keep their payloads.
-- Neither (conversation_id, pos) nor (user_id, pos) is used by any query (sync scans by
-- position; gap filling uses (conversation_id, seq)): every write paid for two indexes.
DROP INDEX events_conversation;
DROP INDEX events_user;
-- What a message said when it was sent, kept by its first edit (sealed like `body`), so a
-- replay shows the message as sent, then its `message.updated`. Cleared when the message is
-- deleted for everyone, like `body`.
ALTER TABLE messages ADD COLUMN original_body TEXT;
