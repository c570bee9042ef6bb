"""ISO 4217 currency codes accepted on events.

Snapshot of ISO 4217 "List One" (SIX Group, maintenance agency) as of 2025, taken
by hand so the hot path needs no extra package and no network. Update it when the
agency publishes an amendment (new code: add to ``ACTIVE_CURRENCIES``; withdrawn
code: move it to ``RECENTLY_WITHDRAWN_CURRENCIES``).

Why two sets: events can be backfills of several years of history, and an order
paid in Croatian kuna in 2022 is a real order. Codes withdrawn in the last decade
are therefore still accepted; codes that mean "no currency" (XXX) or "testing"
(XTS) are not, because an amount needs a real unit.
"""

from __future__ import annotations

from typing import Final

ACTIVE_CURRENCIES: Final[frozenset[str]] = frozenset(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
    BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF
    DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
    HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK
    LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA
    XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
    """.split()
)

# Withdrawn since ~2015 and still plausible in historical backfills.
RECENTLY_WITHDRAWN_CURRENCIES: Final[frozenset[str]] = frozenset(
    """
    ANG BYR CUC HRK LTL LVL MRO SLL STD VEF ZWL
    """.split()
)

ACCEPTED_CURRENCIES: Final[frozenset[str]] = ACTIVE_CURRENCIES | RECENTLY_WITHDRAWN_CURRENCIES
