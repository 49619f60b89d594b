"""Reporting: medians and ratios over the rounds, and the Markdown report."""

from __future__ import annotations

import argparse
import statistics

GOALS = {"redeem": 0.50, "flash": 0.40, "inventory": 1.25}


def summarise(results: dict) -> dict:
    """Medians over rounds and ratios against the baseline of the same round."""
    rounds = results.get("rounds", [])
    med: dict = {}

    def median_of(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    for scenario, conns in (("baseline", (16, 64)), ("redeem", (16, 64)), ("flash", (64,))):
        for c in conns:
            runs = [
                (r[scenario][c] if scenario != "flash" else r["flash"])
                for r in rounds if scenario in r
            ]
            if not runs:
                continue
            entry = {
                "rps": median_of(s["rps"] for s in runs),
                "p50_ms": median_of(s["latency_ms"]["p50"] for s in runs),
                "p99_ms": median_of(s["latency_ms"]["p99"] for s in runs),
                "runs_rps": [round(s["rps"], 1) for s in runs],
            }
            cpu = [s["cpu_ms_per_request"] for s in runs if s.get("cpu_ms_per_request")]
            if cpu:
                entry["cpu_ms_per_request"] = {
                    part: median_of(c[part] for c in cpu) for part in ("gunicorn", "postgres", "redis")
                }
            if "baseline" in rounds[0] and scenario != "baseline":
                ratios = [
                    (r["flash"] if scenario == "flash" else r[scenario][c])["rps"] / r["baseline"][c]["rps"]
                    for r in rounds if scenario in r
                ]
                entry["ratio"] = median_of(ratios)
                entry["ratios"] = [round(x, 3) for x in ratios]
            med[f"{scenario}_{c}"] = entry
    covered = [r["covered"] for r in rounds if "covered" in r]
    if covered:
        med["covered_16"] = {
            "rps": median_of(r["covered"]["rps"] for r in covered),
            "p50_ms": median_of(r["covered"]["latency_ms"]["p50"] for r in covered),
            "p99_ms": median_of(r["covered"]["latency_ms"]["p99"] for r in covered),
            "uncovered_rps": median_of(r["uncovered"]["rps"] for r in covered),
            "runs_rps": [round(r["covered"]["rps"], 1) for r in covered],
            # covered / uncovered in the same round (issue 7's goal: at most 10% loss)
            "ratio": median_of(r["covered"]["rps"] / r["uncovered"]["rps"] for r in covered),
            "ratios": [round(r["covered"]["rps"] / r["uncovered"]["rps"], 3) for r in covered],
            "ledger_entries": covered[-1]["ledger"],
        }
        for label in ("covered", "uncovered"):
            cpu = [r[label]["cpu_ms_per_request"] for r in covered if r[label].get("cpu_ms_per_request")]
            if cpu:
                med["covered_16"][f"{label}_cpu_ms_per_request"] = {
                    part: median_of(c[part] for c in cpu) for part in ("gunicorn", "postgres", "redis")
                }
    inventory = results.get("inventory")
    if inventory and "large" in inventory:
        for kind in ("issue", "redeem"):
            small, large = inventory["small"][f"{kind}_p50_ms"], inventory["large"][f"{kind}_p50_ms"]
            drift = inventory["large"]["baseline_p50_ms"] / inventory["small"]["baseline_p50_ms"]
            med[f"inventory_{kind}"] = {
                "small_p50_ms": small, "large_p50_ms": large, "ratio": large / small,
                "baseline_drift": drift, "ratio_drift_corrected": large / small / drift,
            }
    return med


def print_report(args: argparse.Namespace, results: dict, med: dict) -> None:
    print("\n## Storefront API results\n")
    print(f"date {results['date']}, {results['machine']}, gunicorn {results['gunicorn']}, "
          f"{args.runs} runs x {args.duration} s, wrk -t {args.wrk_threads}\n")
    if any(not name.startswith("inventory") for name in med):
        print("| scenario | conns | req/s (median) | p50 ms | p99 ms | ratio vs baseline (median) | goal "
              "| CPU ms/request: gunicorn + PostgreSQL |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    labels = {"baseline": "baseline (bare DRF UPDATE)", "redeem": "redemption",
              "flash": "flash sale issuance"}
    for name, entry in med.items():
        if name.startswith(("inventory", "covered")):
            continue
        scenario, conns = name.rsplit("_", 1)
        ratio = entry.get("ratio")
        goal = ""
        if scenario in ("redeem", "flash") and ratio is not None:
            goal = f">= {GOALS[scenario]:.2f}: {'met' if ratio >= GOALS[scenario] else 'MISSED'}"
        cpu = entry.get("cpu_ms_per_request")
        cpu_text = f"{cpu['gunicorn']:.2f} + {cpu['postgres']:.2f}" if cpu else ""
        print(f"| {labels[scenario]} | {conns} | {entry['rps']:.0f} | {entry['p50_ms']:.1f} | "
              f"{entry['p99_ms']:.1f} | {'' if ratio is None else f'{ratio:.2f}'} | {goal} | {cpu_text} |")
    if "inventory_issue" in med:
        inv = results["inventory"]
        print(f"\n| sequential p50 | {inv['small']['stored']:,} codes | {inv['large']['stored']:,} codes "
              "| ratio | goal | ratio / baseline's ratio (drift) |")
        print("| --- | ---: | ---: | ---: | --- | ---: |")
        for kind in ("issue", "redeem"):
            e = med[f"inventory_{kind}"]
            verdict = "met" if e["ratio"] <= GOALS["inventory"] else "MISSED"
            print(f"| {kind} | {e['small_p50_ms']:.2f} ms | {e['large_p50_ms']:.2f} ms | "
                  f"{e['ratio']:.2f} | <= {GOALS['inventory']:.2f}: {verdict} | "
                  f"{e['ratio_drift_corrected']:.2f} ({e['baseline_drift']:.2f}) |")
        drift = med["inventory_issue"]["baseline_drift"]
        print(f"| baseline (no codes involved) | {inv['small']['baseline_p50_ms']:.2f} ms | "
              f"{inv['large']['baseline_p50_ms']:.2f} ms | {drift:.2f} | | |")
        names = {"lookup": "code lookup by blind index", "batches": "claim: batches with stock",
                 "lock": "claim: lock 1 code (SKIP LOCKED)"}
        for name, text in names.items():
            small_ms, large_ms = inv["small"]["db_ms"][name], inv["large"]["db_ms"][name]
            print(f"| server-side, {text} | {small_ms:.3f} ms | {large_ms:.3f} ms | "
                  f"{large_ms / small_ms:.2f} | | |")
    if "auth" in results:
        auth = results["auth"]
        seq = results.get("baseline_sequential", {}).get("p50_ms")
        print(f"\nkey checking (ApiKeyAuthentication.authenticate, in-process, PostgreSQL): median "
              f"{auth['authenticate_us']:.0f} us over {auth['calls']:,} calls (of which hash check "
              f"{auth['hash_check_us']:.1f} us); rate-limit checks (address and key, one Redis round trip) "
              f"{auth['rate_limits_us']:.0f} us; "
              f"baseline request without auth, sequential p50 {seq:.2f} ms" if seq else "")
    if "covered_16" in med:
        e = med["covered_16"]
        cpu = {label: e.get(f"{label}_cpu_ms_per_request") for label in ("covered", "uncovered")}
        print(f"\nredemption with a covering agreement vs without, c=16, same round: "
              f"{e['rps']:.0f} vs {e['uncovered_rps']:.0f} req/s, ratio {e['ratio']:.2f} "
              f"(runs {e['ratios']}; goal >= 0.90: {'met' if e['ratio'] >= 0.90 else 'MISSED'}); "
              f"p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms"
              + ("; CPU ms/request gunicorn + PostgreSQL: " + ", ".join(
                  f"{label} {c['gunicorn']:.2f} + {c['postgres']:.2f}" for label, c in cpu.items() if c)
                 if any(cpu.values()) else "")
              + f"; ledger entries after the last round: {e['ledger_entries']}")
    flash = [r["flash"] for r in results.get("rounds", []) if "flash" in r]
    if flash:
        print("\nflash sale checks: " + "; ".join(
            f"run {i}: {'ok' if f['checks']['ok'] else 'FAILED'} ({f['checks']['issued']} issued, "
            f"statuses {f['statuses']})" for i, f in enumerate(flash, 1)))
