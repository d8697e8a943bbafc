-- The team's own media (the PostgreSQL twin of ../sqlite/0010_media.sql):
-- images, clips and audio whose files live in the object store under media/.
-- What ffprobe found is kept, so a submission can check an item's kind
-- without reading the file.
CREATE TABLE media (
    id           TEXT PRIMARY KEY NOT NULL,   -- UUID v7
    kind         TEXT NOT NULL,               -- image, video or audio
    name         TEXT NOT NULL,               -- the uploader's label, shown in lists
    content_type TEXT NOT NULL,               -- from the content, not the upload's header
    object_key   TEXT NOT NULL,               -- media/<id>.<ext>
    bytes        BIGINT NOT NULL,
    duration_s   DOUBLE PRECISION,            -- clips and audio
    width        BIGINT,                      -- images and clips
    height       BIGINT,
    origin       TEXT NOT NULL,               -- `upload`, or the scheme and host it was fetched from
    created_at   TEXT NOT NULL
);
