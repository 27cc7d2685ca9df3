-- Statistics of orosanmälningar: per filing month (Europe/Stockholm) and receiving
-- organisation, how many are in each feedback status, and whether the first feedback
-- decision came within 14 days of filing ('within_14', 'after_14'; 'none' before any
-- decision). Kept up in the transactions that file a referral and record feedback;
-- no personal data; retention never touches it.
CREATE TABLE referral_counts (
    month TEXT NOT NULL,
    receiving_org_id TEXT NOT NULL,
    status TEXT NOT NULL,
    timing TEXT NOT NULL,
    count BIGINT NOT NULL,
    -- Per writer thread, as observation_counts.
    shard BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, receiving_org_id, status, timing, shard)
);

-- Days from filing to the first feedback decision, per filing month and receiving
-- organisation: the distribution the median and 90th percentile are read from.
CREATE TABLE referral_decision_days (
    month TEXT NOT NULL,
    receiving_org_id TEXT NOT NULL,
    days INTEGER NOT NULL,
    count BIGINT NOT NULL,
    shard BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, receiving_org_id, days, shard)
);

-- Existing referrals are counted once, when this is applied (storage::aggregates).
INSERT INTO referral_counts (month, receiving_org_id, status, timing, count)
VALUES ('backfill', '', '', '', 0);
