-- Every failed outside call, retried or not, counted by provider and code.
-- Worker processes add their tallies; /metrics reads the totals.
CREATE TABLE provider_errors (
    provider TEXT NOT NULL,
    code     TEXT NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (provider, code)
);
