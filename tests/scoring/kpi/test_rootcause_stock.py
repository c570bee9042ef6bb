from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.kpi.rootcause import OTHER, contributions, ratio_contributions, week_over_week
from scoring.kpi.stock import sales_velocity_per_day, stockout_forecast


def test_contributions_rank_drivers_of_a_drop():
    out = contributions(1000, 700, {"email": (300, 290), "ads": (500, 200), "seo": (150, 160)})
    assert [c.value for c in out][:2] == ["ads", "email"]
    ads = out[0]
    assert ads.delta == -300 and ads.share_of_delta == pytest.approx(1.0) and ads.pct_change == pytest.approx(-0.6)
    assert sum(c.delta for c in out) == pytest.approx(-300)
    other = [c for c in out if c.value == OTHER][0]
    assert other.before == 50 and other.after == 50
    assert out[-1].value == "seo"  # grew against the drop


def test_ratio_mix_vs_rate():
    # conversion: no segment changed its own rate, traffic moved to the worse channel -> pure mix
    before = {"web": (50.0, 1000.0), "app": (10.0, 1000.0)}
    after = {"web": (25.0, 500.0), "app": (15.0, 1500.0)}
    out = ratio_contributions(before, after)
    total = sum(c.total_effect for c in out)
    assert total == pytest.approx(40 / 2000 - 60 / 2000)
    assert all(c.rate_effect == pytest.approx(0) for c in out)
    # rate collapse in one segment -> rate effect on that segment only
    out = ratio_contributions(before, {"web": (10.0, 1000.0), "app": (10.0, 1000.0)})
    assert out[0].value == "web" and out[0].rate_effect == pytest.approx(-0.02) and out[0].mix_effect == 0
    # new segment
    out = ratio_contributions(before, {**before, "tv": (0.0, 1000.0)})
    assert sum(c.total_effect for c in out) == pytest.approx(60 / 3000 - 60 / 2000)


def test_week_over_week_breakdown():
    days = pd.date_range("2024-01-01", periods=14, freq="D")
    rows = []
    for d in days:
        late = d >= pd.Timestamp("2024-01-08")
        rows.append((d, "ads", "FR", 50.0 if late else 100.0))
        rows.append((d, "email", "DE", 40.0))
    frame = pd.DataFrame(rows, columns=["ts", "channel", "country", "revenue"])
    out = week_over_week(frame, at="2024-01-15", time_col="ts", value_col="revenue")
    assert out["delta"] == pytest.approx(-350.0)
    assert out["by"]["channel"][0]["value"] == "ads" and out["by"]["country"][0]["value"] == "FR"
    assert set(out["by"]) == {"channel", "country"}


def test_stockout_levels():
    now = np.datetime64("2024-01-01T00:00:00")
    f = stockout_forecast([100, 100, 5, 100, 100], [10, 10, 1, 0, 30], lead_time_days=[3, 12, 3, 3, 3],
                          warning_threshold=20, critical_threshold=5, now=now)
    np.testing.assert_allclose(f.days_of_cover[:3], [10, 10, 5])
    assert np.isinf(f.days_of_cover[3])
    assert f.alert.tolist() == ["ok", "critical", "critical", "ok", "warning"]
    assert f.stockout_at[0] == now + np.timedelta64(10, "D")
    assert np.isnat(f.stockout_at[3])
    assert "lead time" in f.reason[1] and "critical threshold" in f.reason[2]
    # warns before the warning threshold is hit: level 60 > 20 but the critical level comes in 2.75 days
    g = stockout_forecast(60, 20, 2.8, warning_threshold=20, critical_threshold=5, safety_days=0, now=now)
    assert g.alert.tolist() == ["warning"] and g.days_to_warning[0] == pytest.approx(2.0)


def test_sales_velocity_reacts_to_surge():
    units = np.array([[10] * 7, [10] * 6 + [40]], dtype=float)
    np.testing.assert_allclose(sales_velocity_per_day(units), [10, 40])
