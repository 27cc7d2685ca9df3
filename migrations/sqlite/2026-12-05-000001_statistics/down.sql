DROP TABLE observation_counts;
