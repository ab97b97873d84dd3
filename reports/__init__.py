"""Reports for the monthly review (复盘): summary tables kept by workers, report queries, exports."""
