-- Direct Post is opt-in per account: until an operator turns it on, jobs for
-- the account may only send inbox drafts (post_mode `inbox`). 0 or 1.
ALTER TABLE accounts ADD COLUMN direct_post INTEGER NOT NULL DEFAULT 0;
