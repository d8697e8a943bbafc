-- What TikTok's creator_info/query last said about an account's creator (its
-- JSON as clipforge keeps it: names, privacy options, disabled interactions,
-- max_video_post_duration_sec) and when it was asked. Reused for
-- tiktok.creator_info_ttl_secs, so jobs do not spend the 20-a-minute limit;
-- cleared when the account is connected again or disconnected.
ALTER TABLE accounts ADD COLUMN creator_info TEXT;
ALTER TABLE accounts ADD COLUMN creator_info_at TEXT;
