-- The two-way Telegram bot in polling mode: per bot (its numeric id, the part
-- of the token before the colon, which is no secret), the next update to ask
-- getUpdates for, and which process polls until when. One process at a time
-- holds the row (Telegram refuses two pollers with 409); another takes it
-- over when held_until has passed. next_offset only grows, and only the
-- holder moves it, after it acted on (or deliberately ignored) each update.
CREATE TABLE telegram_polling (
    bot         TEXT PRIMARY KEY NOT NULL,
    next_offset BIGINT NOT NULL,
    holder      TEXT NOT NULL,
    held_until  TEXT NOT NULL
);
