-- Files of any type, and voice messages (contract additions of 2026-11-29): `media.kind`
-- gains 'audio', and audio uploads carry their duration.
ALTER TABLE media DROP CONSTRAINT media_kind_check;
ALTER TABLE media ADD CONSTRAINT media_kind_check CHECK (kind IN ('image', 'video', 'audio', 'file'));
ALTER TABLE media ADD COLUMN duration_ms BIGINT;
