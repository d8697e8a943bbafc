-- A rate-limit hit may name who holds it (for TikTok's draft slots, the job
-- whose upload took it), so that exactly that hit can be given back when
-- TikTok did not keep the upload, or be cut short (held_until) when TikTok can
-- hold it only for a while (an init whose answer was lost: at most its upload
-- URL's hour). A hit counts while it is inside its window and before
-- held_until, if set.
ALTER TABLE rate_hits ADD COLUMN holder TEXT;
ALTER TABLE rate_hits ADD COLUMN held_until TEXT;
