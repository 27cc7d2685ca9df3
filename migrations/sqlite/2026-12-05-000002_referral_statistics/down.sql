DROP TABLE referral_decision_days;
DROP TABLE referral_counts;
