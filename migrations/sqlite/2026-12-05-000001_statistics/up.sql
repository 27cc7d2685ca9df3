-- Statistics (uppföljning): observations per month (Europe/Stockholm), place and
-- category, kept up in the transaction that files each observation. No personal data,
-- and retention never touches it, so the counts outlive the records they count.
-- Existing observations are counted once, when this migration is applied (see
-- storage::aggregates::backfill).
CREATE TABLE observation_counts (
    month TEXT NOT NULL,
    place_id TEXT NOT NULL,
    category TEXT NOT NULL,
    count BIGINT NOT NULL,
    -- Each writer thread adds to rows of its own (a random number it drew), so writers on
    -- several instances never wait for each other's row locks; readers add the shards up.
    shard BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, place_id, category, shard)
);

-- The marker that asks for that count (months sort before letters, so no range of
-- months ever includes it).
INSERT INTO observation_counts (month, place_id, category, count) VALUES ('backfill', '', '', 0);
