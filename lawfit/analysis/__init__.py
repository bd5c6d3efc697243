"""Questions asked of fits: critical data sizes, backtests, recipes, compute-optimal allocation,
where to run next."""
