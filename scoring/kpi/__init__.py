"""KPI monitoring algorithms (pure NumPy/pandas, no Django).

- base: KpiScores / Reason, the KpiDetector protocol, evaluate_series (backfill, no look-ahead),
  evaluate_latest (one closed bucket of many aligned series)
- series: cadence inference, grids, robust row statistics, season detection
- seasonal: SeasonalRobustZ; ratio: pooled ratio helpers + BinomialRatioDetector
- baseline: hour-of-week rate baseline of sub-hourly counts, exact quasi-Poisson z (silent runs)
- forecast: fit_forecast / forecast (Prophet, cached tables) + ProphetResidual
- iforest: IsolationForestKpi on day-window features
- consensus: combine() k-of-n; noise: direction / min change / min duration / calendar -> incidents
- rootcause: contributions, ratio_contributions (mix vs rate), explain_change, week_over_week
- stock: stockout_forecast, sales_velocity_per_day, depletion_velocity, stock_episodes (one alert
  per escalation of an episode, closed by the restock); pipeline: detect() = all of the above for one series
- synthetic: labelled synthetic series for tests and benchmarks
"""
