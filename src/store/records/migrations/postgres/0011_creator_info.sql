-- What TikTok's creator_info/query last said about an account's creator (the
-- PostgreSQL twin of ../sqlite/0011_creator_info.sql): its JSON as clipforge
-- keeps it and when it was asked. Reused for tiktok.creator_info_ttl_secs;
-- cleared when the account is connected again or disconnected.
ALTER TABLE accounts ADD COLUMN creator_info TEXT;
ALTER TABLE accounts ADD COLUMN creator_info_at TEXT;
