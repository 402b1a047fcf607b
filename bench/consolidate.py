"""consolidate: memtui's job vs hand-written set-based SQL on copies of one database.

The data: conversations (half closed) started over the last 90 days with
messages, and outcomes spread over senders with a skew. At the fixed now the
gates pass (no previous consolidation fact, far more than 5 conversations), so
memtui does the pruning: messages of closed conversations last updated more
than 30 days ago, and all but the newest 100 outcomes per sender. The baseline
does the same with one DELETE each (plus the same fact write), on SQLite or, with
``--backend postgresql``, on PostgreSQL through psycopg.
"""
from __future__ import annotations

from pathlib import Path

from bench import common
from bench.common import DAY, NOW, NOW_TS, Section, log, median, timer

CONVERSATIONS = 100_000
MESSAGES = 1_000_000
OUTCOMES = 200_000
SENDERS = 500
RETENTION_S = 30 * DAY
KEEP_OUTCOMES = 100


def raw(path: str) -> dict:
    """Child: the set-based SQL baseline."""
    with timer() as t:
        conn = common.raw_connect(path)
        conn.execute("BEGIN IMMEDIATE")
        messages = conn.execute(
            "DELETE FROM message WHERE conversation_id IN"
            " (SELECT id FROM conversation WHERE status = 'closed' AND updated_at < ?)",
            (NOW_TS - RETENTION_S,)).rowcount
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        outcomes = conn.execute(
            "DELETE FROM outcome WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
            " (PARTITION BY sender ORDER BY created_at DESC, id DESC) AS rank FROM outcome) WHERE rank > ?)",
            (KEEP_OUTCOMES,)).rowcount
        conn.execute(
            "INSERT INTO fact (sender, key, value, updated_at) VALUES ('__system__', 'last_consolidation', ?, ?)"
            " ON CONFLICT (sender, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (NOW.isoformat(), NOW_TS))
        conn.execute("COMMIT")
        conn.close()
    return {"wall_s": t["s"], "messages_pruned": messages, "outcomes_pruned": outcomes}


def raw_pg(path: str) -> dict:
    """Child: the set-based SQL baseline on PostgreSQL (psycopg 3, READ COMMITTED, as memtui runs)."""
    with timer() as t:
        conn = common.pg_connect(path, autocommit=False)
        with conn.transaction():
            messages = conn.execute(
                "DELETE FROM message WHERE conversation_id IN"
                " (SELECT id FROM conversation WHERE status = 'closed' AND updated_at < %s)",
                (NOW_TS - RETENTION_S,)).rowcount
        with conn.transaction():
            outcomes = conn.execute(
                "DELETE FROM outcome WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
                " (PARTITION BY sender ORDER BY created_at DESC, id DESC) AS rank FROM outcome) AS ranked"
                " WHERE rank > %s)", (KEEP_OUTCOMES,)).rowcount
            conn.execute(
                "INSERT INTO fact (sender, key, value, updated_at) VALUES ('__system__', 'last_consolidation', %s, %s)"
                " ON CONFLICT (sender, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (NOW.isoformat(), NOW_TS))
        conn.close()
    return {"wall_s": t["s"], "messages_pruned": messages, "outcomes_pruned": outcomes}


def state(backend, target) -> dict:
    return {
        "messages": backend.scalar(target, "SELECT count(*) FROM message"),
        "message_id_sum": int(backend.scalar(target, "SELECT coalesce(sum(id), 0) FROM message")),
        "outcomes": backend.scalar(target, "SELECT count(*) FROM outcome"),
        "outcome_id_sum": int(backend.scalar(target, "SELECT coalesce(sum(id), 0) FROM outcome")),
        "fact": backend.scalar(target, "SELECT value FROM fact"
                               " WHERE sender = '__system__' AND key = 'last_consolidation'"),
    }


def run(args, workdir: Path, backend) -> Section:
    sizes = {
        "conversations": max(100, int(CONVERSATIONS * args.scale)),
        "messages": max(1000, int(MESSAGES * args.scale)),
        "outcomes": max(200, int(OUTCOMES * args.scale)),
        "senders": max(5, int(SENDERS * args.scale)),
    }
    sec = Section(f"consolidate on {backend.label}: {sizes['messages']:,} messages, {sizes['outcomes']:,} outcomes")
    db = backend.cached("consolidate", "fill_conversations", seed=args.seed, order=args.order, **sizes)
    before = state(backend, db)
    closed_old = backend.scalar(db, "SELECT count(*) FROM conversation WHERE status = 'closed' AND updated_at < ?",
                                (NOW_TS - RETENTION_S,))
    raw_target = "bench.consolidate:raw_pg" if backend.name == "postgresql" else "bench.consolidate:raw"

    runs = {"memtui": [], "raw": []}
    states = {}
    for rep in range(args.repeat):
        sequence = ("memtui", "raw") if rep % 2 == 0 else ("raw", "memtui")
        for who in sequence:
            log(f"consolidate: {who} (run {rep + 1}/{args.repeat})")
            copy = backend.copy(db, f"consolidate-{who}")
            if who == "memtui":
                res = common.run_contender(backend, copy, workdir, "bench.common:memtui_job", job="consolidate")
                if res["status"] != "success":
                    raise RuntimeError(f"memtui consolidate ended {res['status']}: {res['error']}")
                res.update(res["result"])
            else:
                res = common.run_contender(backend, copy, workdir, raw_target)
            after = state(backend, copy)
            backend.remove(copy)
            log(f"consolidate: {who} {res['wall_s']:.2f} s, pruned {res['messages_pruned']:,} messages,"
                f" {res['outcomes_pruned']:,} outcomes")
            runs[who].append(res)
            states.setdefault(who, after)
            if after != states[who]:
                raise RuntimeError(f"{who} left different data on repeat {rep + 1}")

    t_memtui = median([r["wall_s"] for r in runs["memtui"]])
    t_raw = median([r["wall_s"] for r in runs["raw"]])
    m0, r0 = runs["memtui"][0], runs["raw"][0]
    rep_note = f" (median of {args.repeat})" if args.repeat > 1 else ""
    sec.line(f"  data: seed {args.seed}, ids in {args.order} order; {sizes['conversations']:,} conversations"
             f" ({closed_old:,} closed and idle > 30 days), {before['messages']:,} messages,"
             f" {before['outcomes']:,} outcomes over {sizes['senders']:,} senders")
    sec.line()
    sec.table(
        ["contender", "seconds", "messages pruned", "outcomes pruned", "messages left", "outcomes left",
         "MB written", "peak RSS MB"],
        [
            [f"memtui run_job('consolidate'){rep_note}", t_memtui, m0["messages_pruned"], m0["outcomes_pruned"],
             states["memtui"]["messages"], states["memtui"]["outcomes"], f"{m0['written_mb']:.1f}",
             f"{m0['rss_peak_mb']:.1f}"],
            [f"raw set-based SQL{rep_note}", t_raw, r0["messages_pruned"], r0["outcomes_pruned"],
             states["raw"]["messages"], states["raw"]["outcomes"], f"{r0['written_mb']:.1f}",
             f"{r0['rss_peak_mb']:.1f}"],
        ],
    )
    sec.line(common.WRITTEN_NOTE[backend.name])
    sec.line()
    job_s = median([r["job_ms"] for r in runs["memtui"]]) / 1000
    sec.line(f"  memtui job time (run record duration_ms): {job_s:.3f} s of {t_memtui:.3f} s in the child")
    if args.repeat > 1:
        sec.line("  all runs (s): memtui " + ", ".join(f"{r['wall_s']:.2f}" for r in runs["memtui"])
                 + "; raw " + ", ".join(f"{r['wall_s']:.2f}" for r in runs["raw"]))
    same = states["memtui"] == states["raw"]
    sec.check("same result, memtui vs raw SQL", same,
              f"messages left {states['memtui']['messages']:,} vs {states['raw']['messages']:,}, outcomes left "
              f"{states['memtui']['outcomes']:,} vs {states['raw']['outcomes']:,}, surviving ids "
              f"{'identical' if same else 'DIFFER'}")
    sec.check("memtui / raw <= 1.5x", t_memtui / t_raw <= 1.5,
              f"{t_memtui / t_raw:.2f}x ({t_memtui:.2f} s vs {t_raw:.2f} s)")
    sec.data = {"sizes": sizes, "memtui": runs["memtui"], "raw": runs["raw"], "state": states,
                "ratio_memtui_raw": t_memtui / t_raw}
    return sec
