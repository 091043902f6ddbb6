"""Render a run's ``summary.json`` as ``RESULTS.md`` (run.py calls
:func:`render`; ``python benchmarks/report.py [summary.json]`` re-renders
the latest run to stdout)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

REF = "node"
OURS = "webpy"
PEER = "pysio"


def _clean(reps: list[dict]) -> list[dict]:
    clean = [r for r in reps if r.get("clean")]
    return clean or reps


def med(reps: list[dict], key: str) -> float | None:
    values = [r[key] for r in _clean(reps) if r.get(key) is not None]
    return statistics.median(values) if values else None


def span(reps: list[dict], key: str) -> str:
    values = [r[key] for r in _clean(reps) if r.get(key) is not None]
    return f"{min(values):,.0f}–{max(values):,.0f}" if values else "–"


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, ref: float | None) -> float | None:
    if value is None or not ref:
        return None
    return value / ref


def used(reps: list[dict]) -> str:
    return f"{sum(1 for r in reps if r.get('clean'))}/{len(reps)}"


class Value(float):
    """A median that had to include disturbed repetitions (no clean one)."""

    disturbed = True


def med_marked(reps: list[dict], key: str) -> float | None:
    """:func:`med`, as a :class:`Value` when no repetition was clean."""
    value = med(reps, key)
    if value is not None and not any(r.get("clean") for r in reps):
        return Value(value)
    return value


def mark(value: float | None) -> str:
    return " ⚠" if getattr(value, "disturbed", False) else ""


def metrics(summary: dict) -> list[tuple[str, str, dict[str, float | None]]]:
    """(label, better, value per server) for the headline table."""
    rows: list[tuple[str, str, dict[str, float | None]]] = []
    servers = list(summary["servers"])
    for n, by_server in summary["fanout"].items():
        rows.append(
            (
                f"fan-out deliveries/s, N={n}",
                "higher",
                {
                    s: med_marked(by_server[s]["reps"]["flood"], "deliveries_per_s")
                    for s in servers
                    if "reps" in by_server.get(s, {})
                },
            )
        )
    last = list(summary["fanout"])[-1] if summary["fanout"] else None
    if last:
        by_server = summary["fanout"][last]
        for phase, key, label in (
            ("flood", "p50_ms", "flood p50 ms"),
            ("flood", "p99_ms", "flood p99 ms"),
            ("rate", "p50_ms", "p50 ms at equal load"),
            ("rate", "p99_ms", "p99 ms at equal load"),
        ):
            rows.append(
                (
                    f"fan-out {label}, N={last}",
                    "lower",
                    {
                        s: med_marked(by_server[s]["reps"][phase], key)
                        for s in servers
                        if "reps" in by_server.get(s, {})
                    },
                )
            )
    if summary["echo"]:
        for key, label, better in (
            ("requests_per_s", "echo requests/s", "higher"),
            ("p50_ms", "echo p50 ms", "lower"),
            ("p99_ms", "echo p99 ms", "lower"),
        ):
            rows.append(
                (
                    f"{label} ({summary['params']['echo_clients']} clients)",
                    better,
                    {
                        s: med_marked(r["reps"], key)
                        for s, r in summary["echo"].items()
                        if "reps" in r
                    },
                )
            )
    if summary.get("pollers"):
        n = summary["params"].get("pollers")
        for key, label in (
            ("server_us_per_delivery", "long-polling server CPU us per delivery"),
            ("p50_ms", "long-polling p50 ms"),
        ):
            rows.append(
                (
                    f"{label} ({n} pollers)",
                    "lower",
                    {
                        s: med_marked(r["reps"], key)
                        for s, r in summary["pollers"].items()
                        if "reps" in r
                    },
                )
            )
    if summary.get("slowfanout"):
        slow = str(summary["params"].get("trickle_slow"))
        kept: dict[str, float | None] = {}
        for s, runs in summary["slowfanout"].items():
            alone = runs.get("0", {}).get("healthy_deliveries_per_s")
            crowded = runs.get(slow, {}).get("healthy_deliveries_per_s")
            kept[s] = round(crowded / alone, 3) if alone and crowded is not None else None
        rows.append((f"broadcast throughput kept with {slow} slow readers", "higher", kept))
    if summary["conns"]:
        conns = summary["params"]["conns"]
        for key, label in (("kb_per_conn", "KB per idle connection"), ("connect_s", "connect")):
            title = f"{label} ({conns} clients)" if key == "kb_per_conn" else f"{label} {conns} s"
            rows.append(
                (
                    title,
                    "lower",
                    {
                        s: med_marked([r for r in reps if "error" not in r], key)
                        for s, reps in summary["conns"].items()
                    },
                )
            )
    return rows


#: a variant's suffix -> what it measures (the base is the name without it)
VARIANT_COSTS = {"-limits": "rate limits on", "-metrics": "metrics on"}


def _per_round(reps: list[dict], key: str) -> dict[int, float]:
    """The median of ``key`` in each round (clean repetitions when a round
    has any)."""
    rounds: dict[int, list[dict]] = {}
    for rep in reps:
        if "round" in rep:
            rounds.setdefault(rep["round"], []).append(rep)
    out = {}
    for turn, group in rounds.items():
        value = med(group, key)
        if value is not None:
            out[turn] = value
    return out


def _cpu_us(reps: list[dict], per: str) -> list[dict]:
    """Repetitions with ``cpu_us``: the server's CPU microseconds per unit
    of ``per`` (its CPU % over the same seconds ÷ the rate)."""
    out = []
    for rep in reps:
        cpu, rate = rep.get("server_cpu"), rep.get(per)
        extra = {"cpu_us": cpu / 100 * 1e6 / rate} if cpu and rate else {}
        out.append({**rep, **extra})
    return out


Paired = tuple[str, str, str, dict[str, tuple[float, float, float, int]]]


def paired(summary: dict) -> list[Paired]:
    """Each operations variant beside its base, round by round: (test,
    variant, base, {key: (median of the rounds' ratios, lowest, highest,
    rounds)}). Servers of one round ran one after the other, so a ratio
    within a round is not disturbed by what the machine did between rounds,
    which the medians over every round are."""
    tests: list[tuple[str, dict[str, list[dict]], str]] = []
    for name, result in summary.get("echo", {}).items():
        if "reps" in result:
            tests.append(("echo", {name: result["reps"]}, "requests_per_s"))
    for n, by_server in summary.get("fanout", {}).items():
        for name, result in by_server.items():
            if "reps" in result:
                flood = result["reps"]["flood"]
                tests.append((f"fan-out N={n}", {name: flood}, "deliveries_per_s"))
    reps_of: dict[tuple[str, str], tuple[list[dict], str]] = {}
    for test, by_name, key in tests:
        for name, reps in by_name.items():
            reps_of[(test, name)] = (_cpu_us(reps, key), key)
    out = []
    for (test, name), (reps, key) in reps_of.items():
        for suffix in VARIANT_COSTS:
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base is None or (test, base) not in reps_of:
                continue
            base_reps = reps_of[(test, base)][0]
            figures = {}
            for k in (key, "cpu_us"):
                mine, theirs = _per_round(reps, k), _per_round(base_reps, k)
                ratios = [mine[t] / theirs[t] for t in mine if theirs.get(t)]
                if ratios:
                    figures[k] = (statistics.median(ratios), min(ratios), max(ratios), len(ratios))
            if figures:
                out.append((test, name, base, figures))
    return out


def paired_lines(summary: dict) -> list[str]:
    """The paired costs as Markdown lines (none when nothing was paired)."""
    rows = paired(summary)
    if not rows:
        return []
    lines = [
        "## What the operations features cost, paired round by round",
        "",
        "Each variant against its base (the same server with the feature off), as the "
        "median of their ratios within each round (`--rounds`: in a round every server is "
        "measured once, one after the other), with the lowest and highest round. Throughput "
        "ratio: ≥ 0.95 is a cost of at most 5 %. CPU ratio: the server's CPU microseconds per "
        "request or delivery, variant ÷ base.",
        "",
        "| test | variant | base | throughput ratio (range) | CPU µs ratio (range) | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for test, name, base, figures in rows:
        cells = []
        for key in [k for k in figures if k != "cpu_us"] + ["cpu_us"]:
            if key in figures:
                value, low, high, _ = figures[key]
                cells.append(f"**{value:.3f}** ({low:.3f}–{high:.3f})")
            else:
                cells.append("–")
        count = max(f[3] for f in figures.values())
        lines.append(f"| {test} | {name} | {base} | {cells[0]} | {cells[-1]} | {count} |")
    lines.append("")
    return lines


def goals(rows: list[tuple[str, str, dict[str, float | None]]]) -> list[str]:
    """The issue's goals, checked against this run."""
    by_label = {label: values for label, _, values in rows}
    out = []

    def check(label_start: str, name: str, ref: str, op: str, limit: float) -> None:
        for label, values in by_label.items():
            if label.startswith(label_start):
                r = ratio(values.get(name), values.get(ref))
                if r is None:
                    out.append(f"- {label}: {name}/{ref} not measured")
                    return
                ok = r >= limit if op == ">=" else r <= limit
                out.append(
                    f"- {label}: {name}/{ref} = **{r:.2f}×** (goal {op} {limit}): "
                    f"{'met' if ok else 'NOT met'}{mark(values.get(name))}{mark(values.get(ref))}"
                )
                return

    check("fan-out deliveries/s, N=1000", OURS, REF, ">=", 1.0)
    check("echo requests/s", OURS, REF, ">=", 0.5)
    check("KB per idle connection", OURS, REF, "<=", 1.5)
    for label in list(by_label):
        if label.startswith("fan-out deliveries/s") or label.startswith("echo requests/s"):
            check(label, OURS, PEER, ">=", 1.0)
    return out


def reload_section(path: Path) -> list[str]:
    """The latest ``reload_bench.py`` figures (measured separately, so they
    carry their own date), or how to get them."""
    if not path.is_file():
        return [
            "`benchmarks/reload_bench.py` measures the restart latency of `wsio runserver` "
            "beside Flask-SocketIO's reloader; run it and re-render to show its figures here."
        ]
    data = json.loads(path.read_text())
    when = data["info"].get("finished") or "the latest run"
    lines = [
        f"From `benchmarks/reload_bench.py` ({when}; {data['info']['machine']}, "
        f"Python {data['info']['python']}): time from a file write to the new code "
        "answering a request, 20 edits each.",
        "",
        "| server | median ms | p90 ms | min–max ms | missed |",
        "|---|---|---|---|---|",
    ]
    results = data["results"]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['min_ms']:.1f}–{r['max_ms']:.1f} | {r['missed']} |"
        )
    if len(results) >= 2:
        base, peer = results[0], results[-1]
        lines += [
            "",
            f"Ratio {peer['key']} / {base['key']}: {peer['median_ms'] / base['median_ms']:.1f}× "
            f"at the median, {peer['p90_ms'] / base['p90_ms']:.1f}× at p90.",
        ]
    return lines


def render(summary: dict) -> tuple[str, str]:
    """Return (RESULTS.md text, a short console summary)."""
    servers = summary["servers"]
    names = list(servers)
    rows = metrics(summary)
    p = summary["params"]
    m = summary["machine"]
    v = summary["versions"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmark results")
    add("")
    add(
        f"Run started {summary['started']}, {summary.get('wall_s', 0) / 60:.1f} min wall, "
        "by `benchmarks/run.sh` (see the README's Benchmarks section for the method)."
    )
    add("")
    add(
        f"Machine: {m['cores']} × {m['cpu']} vCPU, {m['memory_gb']} GB, Linux {m['kernel']}; "
        f"Node {v.get('node', '?')}, Python {v.get('ours:python', '?')}. Every server ran alone, "
        f"pinned to core {p['server_cpu']}; the load generator ran pinned to core "
        f"{p['client_cpu']}. The machine is shared with other work: repetitions in which "
        f"something else took ≥ {p['max_interference']:.0f} % of a pinned core are left out "
        "of the medians (see *reps used*)."
    )
    add("")
    add("Servers, all with the same three handlers (`join`, `bcast`, `echo`, each acked):")
    add("")
    for name, info in servers.items():
        add(f"- **{name}**: {info['label']}: `{Path(info['command'].split()[-1]).name}`")
    add("")
    add("## Headline: ratios to Node socket.io (= 1.00)")
    add("")
    add(
        "Medians of the clean repetitions; the measured value is in brackets. ⚠ marks a "
        "value with no clean repetition at all (the machine was busy throughout): its median "
        "is over disturbed repetitions and is not a fair comparison."
    )
    add("")
    add("| metric | better | " + " | ".join(names) + " |")
    add("|---|---|" + "---|" * len(names))
    for label, better, values in rows:
        ref = values.get(REF)
        cells = []
        for s in names:
            value = values.get(s)
            r = ratio(value, ref)
            digits = 0 if (value or 0) >= 100 else 2
            cells.append("–" if r is None else f"**{r:.2f}** ({fmt(value, digits)}){mark(value)}")
        add(f"| {label} | {better} | " + " | ".join(cells) + " |")
    add("")
    add("### The issue's goals in this run")
    add("")
    lines.extend(goals(rows))
    add("")

    lines.extend(paired_lines(summary))

    if summary["fanout"]:
        add("## Fan-out: one room, one sender")
        add("")
        add(
            "N subscribers join the room `bench`; a sender outside the room emits `bcast` "
            f"with a {p['size']}-byte padding field and its send time, and the server emits "
            "`msg` with the same object to the room. Each subscriber must get every message "
            "exactly once and in order (*complete*). Latency is receive time minus send time "
            "(same process, same clock). Per N: a warm-up, then the rate phase (an open loop "
            f"offering {p['offered']:,} deliveries/s, the same for every server) and the flood "
            "phase (the next `bcast` leaves when the previous one is acked; deliveries/s = "
            "deliveries ÷ (first send → last delivery)), each repeated."
        )
        add("")
        add(
            "| N | server | flood deliveries/s (min–max) | ×node | flood p50 / p99 ms | "
            "rate p50 / p99 ms | srv CPU % | loadgen CPU % | loadgen µs/delivery | complete "
            "| reps used |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for n, by_server in summary["fanout"].items():
            ref = med(by_server.get(REF, {}).get("reps", {}).get("flood", []), "deliveries_per_s")
            for s in names:
                res = by_server.get(s)
                if res is None:
                    continue
                if "reps" not in res:
                    add(f"| {n} | {s} | error: {res.get('error')} | | | | | | | | |")
                    continue
                f, r = res["reps"]["flood"], res["reps"]["rate"]
                d = med(f, "deliveries_per_s")
                cpu = med(f, "loadgen_cpu")
                per = (cpu / 100 * 1e6 / d) if (cpu and d) else None
                complete = all(x["complete"] for x in f + r)
                rr = ratio(d, ref)
                add(
                    f"| {n} | {s} | {fmt(d)} ({span(f, 'deliveries_per_s')}) | "
                    f"{'–' if rr is None else f'{rr:.2f}'} | "
                    f"{fmt(med(f, 'p50_ms'), 2)} / {fmt(med(f, 'p99_ms'), 2)} | "
                    f"{fmt(med(r, 'p50_ms'), 2)} / {fmt(med(r, 'p99_ms'), 2)} | "
                    f"{fmt(med(f, 'server_cpu'))} | {fmt(cpu)} | {fmt(per, 1)} | "
                    f"{'yes' if complete else '**no**'} | {used(f)} + {used(r)} |"
                )
        add("")

    if summary["echo"]:
        add("## Echo round trip")
        add("")
        add(
            f"{p['echo_clients']} clients, each in a closed loop: emit `echo` with a "
            f"{p['size']}-byte payload, wait for the ack (checked to carry the payload back), "
            f"repeat; 1 s warm-up, then {p['reps']} × {p['echo_duration']:.0f} s."
        )
        add("")
        add(
            "| server | requests/s (min–max) | ×node | p50 ms | p99 ms | srv CPU % | "
            "loadgen CPU % | bad acks | reps used |"
        )
        add("|---|---|---|---|---|---|---|---|---|")
        ref = med(summary["echo"].get(REF, {}).get("reps", []), "requests_per_s")
        for s in names:
            res = summary["echo"].get(s)
            if res is None:
                continue
            if "reps" not in res:
                add(f"| {s} | error: {res.get('error')} | | | | | | | |")
                continue
            r = res["reps"]
            d = med(r, "requests_per_s")
            rr = ratio(d, ref)
            add(
                f"| {s} | {fmt(d)} ({span(r, 'requests_per_s')}) | "
                f"{'–' if rr is None else f'{rr:.2f}'} | {fmt(med(r, 'p50_ms'), 2)} | "
                f"{fmt(med(r, 'p99_ms'), 2)} | {fmt(med(r, 'server_cpu'))} | "
                f"{fmt(med(r, 'loadgen_cpu'))} | {res['mismatches']} | {used(r)} |"
            )
        add("")

    if summary["conns"]:
        add("## Idle connections: memory and connect time")
        add("")
        add(
            f"A fresh server per repetition. Baseline RSS (server process tree, `VmRSS`) is "
            f"read after 10 clients echoed for 1 s and left, plus {p['settle']:.0f} s; then "
            f"{p['conns']} websocket clients connect ({p['conn_concurrency']} handshakes in "
            f"flight) and RSS is read {p['settle']:.0f} s after the last one; then "
            f"{20} random clients echo to prove they are alive. "
            f"KB/conn = (RSS@{p['conns']} − RSS@0) ÷ {p['conns']}."
        )
        add("")
        add(
            "| server | RSS @0 MB | RSS @N MB | KB/conn (per rep) | ×node | connect s | "
            "conns/s | srv CPU % connecting | RSS after close MB | alive |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|")
        ref = med(summary["conns"].get(REF, []), "kb_per_conn")
        for s in names:
            reps = [r for r in summary["conns"].get(s, []) if "error" not in r]
            if not reps:
                continue
            k = med(reps, "kb_per_conn")
            rr = ratio(k, ref)
            add(
                f"| {s} | {fmt(med(reps, 'rss0_mb'), 1)} | {fmt(med(reps, 'rssn_mb'), 1)} | "
                f"{fmt(k, 1)} ({', '.join(fmt(r['kb_per_conn'], 1) for r in reps)}) | "
                f"{'–' if rr is None else f'{rr:.2f}'} | {fmt(med(reps, 'connect_s'), 2)} | "
                f"{fmt(med(reps, 'conns_per_s'))} | {fmt(med(reps, 'server_cpu_connecting'))} | "
                f"{fmt(med(reps, 'rss_after_mb'), 1)} | "
                f"{'/'.join(str(r['alive']) for r in reps)} of {reps[0]['checked']} |"
            )
        add("")

    add("## Smoke test with the official client")
    add("")
    add(
        "Before measuring, each server is checked with the official socket.io-client "
        "(`smoke.js`): echo over websocket, over polling and over polling upgraded to "
        "websocket, then a room broadcast of 5 messages to 20 subscribers. The load "
        "generator's own minimal client is used for the measurements because it costs "
        "less CPU per delivery (see *loadgen µs/delivery*)."
    )
    add("")
    for s, res in summary["smoke"].items():
        add(f"- {s}: {'ok' if res.get('ok') else 'FAILED: ' + str(res.get('error'))}")
    add("")
    add("## Reload")
    add("")
    for line in reload_section(Path(__file__).parent / "results" / "reload-latest.json"):
        add(line)
    add("")
    add("## Versions")
    add("")
    add("| component | version |")
    add("|---|---|")
    for key in sorted(v):
        add(f"| {key} | {v[key]} |")
    add("")
    add("## Parameters")
    add("")
    add("```")
    add(json.dumps({k: val for k, val in p.items()}, sort_keys=True))
    add("```")
    add("")

    console = ["Headline (ratio to node, value):"]
    for label, _, values in rows:
        ref = values.get(REF)
        parts = []
        for s in names:
            value = values.get(s)
            r = ratio(value, ref)
            parts.append(f"{s} {'–' if r is None else f'{r:.2f}x'} ({fmt(value, 2)}){mark(value)}")
        console.append(f"  {label}: " + ", ".join(parts))
    console.append("Goals:")
    console.extend("  " + g[2:].replace("**", "") for g in goals(rows))
    for test, name, base, figures in paired(summary):
        parts = [f"{k} {v[0]:.3f} ({v[1]:.3f}-{v[2]:.3f})" for k, v in figures.items()]
        rounds = max(v[3] for v in figures.values())
        console.append(f"Paired {test} {name}/{base}, {rounds} rounds: " + ", ".join(parts))
    return "\n".join(lines), "\n".join(console)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "results" / "latest" / "summary.json"
    print(render(json.loads(path.read_text()))[0])
