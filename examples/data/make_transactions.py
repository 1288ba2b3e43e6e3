"""Generate the small synthetic card-transaction data the examples use.

Run from anywhere: ``python examples/data/make_transactions.py [OUT_DIR]`` (default: this
directory). The output is fixed by the seed, so re-running it reproduces the committed CSV
files byte for byte (a test checks that):

* ``transactions.csv`` — 2,000 labelled transactions, about 5 % fraud (``is_fraud`` = 1);
* ``to_score.csv`` — 300 unlabelled transactions with an ``id`` column, for batch scoring.

Fraud is made more likely by large amounts, night hours, card-not-present purchases far from
home, bursts of recent transactions and young accounts, with noise, so models can learn it
but not perfectly.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from pathlib import Path

SEED = 20261126
HERE = Path(__file__).resolve().parent
CATEGORIES = ("grocery", "electronics", "travel", "restaurant", "fuel", "online_services")
COLUMNS = (
    "amount",
    "hour",
    "merchant_category",
    "card_present",
    "distance_from_home_km",
    "num_tx_last_24h",
    "account_age_days",
)


def _transaction(rng: random.Random) -> dict:
    category = rng.choice(CATEGORIES)
    card_present = int(rng.random() < (0.15 if category == "online_services" else 0.7))
    row = {
        "amount": round(math.exp(rng.gauss(3.4, 1.0)), 2),
        "hour": rng.randrange(24),
        "merchant_category": category,
        "card_present": card_present,
        "distance_from_home_km": round(abs(rng.gauss(0, 25)) + (rng.random() < 0.05) * rng.uniform(100, 3000), 1),
        "num_tx_last_24h": min(30, int(rng.expovariate(0.5))),
        "account_age_days": rng.randrange(1, 3650),
    }
    row["is_fraud"] = int(rng.random() < _fraud_probability(row))
    return row


def _fraud_probability(row: dict) -> float:
    score = -6.0
    score += 1.8 * (row["amount"] > 250)
    score += 1.5 * (row["hour"] < 5)
    score += 1.6 * (row["card_present"] == 0)
    score += 2.0 * (row["distance_from_home_km"] > 100)
    score += 0.35 * row["num_tx_last_24h"]
    score += 1.6 * (row["account_age_days"] < 60)
    score += 0.8 * (row["merchant_category"] in ("electronics", "online_services"))
    return 1.0 / (1.0 + math.exp(-score))


def _write(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row[c] for c in columns})


def main(out_dir: Path = HERE) -> None:
    rng = random.Random(SEED)
    labelled = [_transaction(rng) for _ in range(2000)]
    _write(out_dir / "transactions.csv", labelled, COLUMNS + ("is_fraud",))
    to_score = [dict(_transaction(rng), id=f"tx{i:04d}") for i in range(300)]
    _write(out_dir / "to_score.csv", to_score, ("id",) + COLUMNS)
    fraud = sum(r["is_fraud"] for r in labelled)
    print(f"transactions.csv: {len(labelled)} rows, {fraud} fraud ({fraud / len(labelled):.1%}); "
          f"to_score.csv: {len(to_score)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
