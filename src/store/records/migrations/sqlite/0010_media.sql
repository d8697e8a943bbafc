-- The team's own media (POST /v1/media): images, clips and audio whose files
-- live in the object store under media/. What ffprobe found is kept, so a
-- submission can check an item's kind without reading the file.
CREATE TABLE media (
    id           TEXT PRIMARY KEY NOT NULL,   -- UUID v7
    kind         TEXT NOT NULL,               -- image, video or audio
    name         TEXT NOT NULL,               -- the uploader's label, shown in lists
    content_type TEXT NOT NULL,               -- from the content, not the upload's header
    object_key   TEXT NOT NULL,               -- media/<id>.<ext>
    bytes        INTEGER NOT NULL,
    duration_s   REAL,                        -- clips and audio
    width        INTEGER,                     -- images and clips
    height       INTEGER,
    origin       TEXT NOT NULL,               -- `upload`, or the scheme and host it was fetched from
    created_at   TEXT NOT NULL
);
