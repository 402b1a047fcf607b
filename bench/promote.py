"""promote: memtui's job vs hand-written set-based SQL vs a per-row ORM loop.

All three do the same work at the same fixed now: promote every pending memory
with round(score, 9) >= 0.6 or remember = 1 into long_term_memory (deleting it
from pending_memory), then expire the unpromoted pending memories older than
7 days. memtui and raw SQL run on copies of one 1M-row database; the per-row
loop runs on a 20k-row database built the same way (its time scaled x50) and is
checked against memtui on a copy of that same 20k database.

On either backend (``--backend``): on PostgreSQL the copies are databases made
from one template, and the raw SQL is the same three statements in PostgreSQL's
spelling (power, greatest/least, round on numeric), run through psycopg.
"""
from __future__ import annotations

from pathlib import Path

from bench import common
from bench.common import DAY, NOW_TS, Section, log, median, run_child, timer

ROWS = 1_000_000
SAMPLE = 20_000
TTL_S = 7 * DAY
THRESHOLD = 0.6

# Hand-written, not imported from memtui: the baseline must not share its SQL.
RAW_SCORE = ("0.20 * pow(0.995, max(0.0, (:now - coalesce(last_access_at, created_at)) / 3600.0))"
             " + 0.30 * min(access_count / 10.0, 1.0)"
             " + 0.25 * min(max(confidence, 0.0), 1.0)"
             " + 0.25 * min(max(importance, 0.0), 10.0) / 10.0")
RAW_PROMOTABLE = f"remember != 0 OR round({RAW_SCORE}, 9) >= {THRESHOLD}"


# PostgreSQL's spelling of the same score: power/greatest/least, round() on numeric (it has no
# round(double precision, int)); the float literals are float8, as the parameters memtui binds are.
PG_SCORE = ("0.20::float8 * power(0.995::float8, greatest(0.0::float8,"
            " (%(now)s - coalesce(last_access_at, created_at)) / 3600.0::float8))"
            " + 0.30::float8 * least(access_count / 10.0::float8, 1.0::float8)"
            " + 0.25::float8 * least(greatest(confidence, 0.0::float8), 1.0::float8)"
            " + 0.25::float8 * least(greatest(importance, 0.0::float8), 10.0::float8) / 10.0::float8")
PG_PROMOTABLE = f"remember OR round(({PG_SCORE})::numeric, 9) >= {THRESHOLD}"


# -- contenders (each runs in its own process) ---------------------------------------------


def raw(path: str) -> dict:
    """Child: the set-based SQL baseline."""
    params = {"now": NOW_TS}
    with timer() as t:
        conn = common.raw_connect(path)
        conn.execute("BEGIN IMMEDIATE")
        promoted = conn.execute(
            "INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at,"
            " promoted_at, last_reinforced_at, recall_count, pinned, source_pending_id)"
            " SELECT content, kind, sender, importance, confidence, created_at, :now, :now, 0, remember, id"
            f" FROM pending_memory WHERE {RAW_PROMOTABLE}", params).rowcount
        deleted = conn.execute(f"DELETE FROM pending_memory WHERE {RAW_PROMOTABLE}", params).rowcount
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        expired = conn.execute("DELETE FROM pending_memory WHERE created_at < ? AND remember = 0",
                               (NOW_TS - TTL_S,)).rowcount
        conn.execute("COMMIT")
        conn.close()
    assert deleted == promoted, (deleted, promoted)
    return {"wall_s": t["s"], "promoted": promoted, "expired": expired}


def raw_pg(path: str) -> dict:
    """Child: the set-based SQL baseline on PostgreSQL (psycopg 3, READ COMMITTED, as memtui runs)."""
    params = {"now": NOW_TS}
    with timer() as t:
        conn = common.pg_connect(path, autocommit=False)
        with conn.transaction():
            promoted = conn.execute(
                "INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at,"
                " promoted_at, last_reinforced_at, recall_count, pinned, source_pending_id)"
                " SELECT content, kind, sender, importance, confidence, created_at, %(now)s, %(now)s, 0, remember, id"
                f" FROM pending_memory WHERE {PG_PROMOTABLE}", params).rowcount
            deleted = conn.execute(f"DELETE FROM pending_memory WHERE {PG_PROMOTABLE}", params).rowcount
        with conn.transaction():
            expired = conn.execute("DELETE FROM pending_memory WHERE created_at < %s AND NOT remember",
                                   (NOW_TS - TTL_S,)).rowcount
        conn.close()
    assert deleted == promoted, (deleted, promoted)
    return {"wall_s": t["s"], "promoted": promoted, "expired": expired}


def per_row(path: str) -> dict:
    """Child: the naive ORM loop — one row at a time, each move or expiry its own transaction."""
    from memtui.models import Store

    cutoff = NOW_TS - TTL_S
    promoted = expired = 0
    with timer() as t:
        store = Store.open(path)
        m = store.m
        ids = [i for (i,) in m.PendingMemory.select(m.PendingMemory.id).order_by(m.PendingMemory.id).tuples()]
        for pid in ids:
            pm = m.PendingMemory.get_by_id(pid)
            last = pm.last_access_at if pm.last_access_at is not None else pm.created_at
            score = round(0.20 * pow(0.995, max(0.0, (NOW_TS - last) / 3600.0))
                          + 0.30 * min(pm.access_count / 10.0, 1.0)
                          + 0.25 * min(max(pm.confidence, 0.0), 1.0)
                          + 0.25 * min(max(pm.importance, 0.0), 10.0) / 10.0, 9)
            if pm.remember or score >= THRESHOLD:
                with store.atomic():
                    m.LongTermMemory.create(
                        content=pm.content, kind=pm.kind, sender=pm.sender, importance=pm.importance,
                        confidence=pm.confidence, created_at=pm.created_at, promoted_at=NOW_TS,
                        last_reinforced_at=NOW_TS, recall_count=0, pinned=pm.remember, source_pending_id=pm.id)
                    pm.delete_instance()
                promoted += 1
            elif pm.created_at < cutoff:
                with store.atomic():
                    pm.delete_instance()
                expired += 1
        store.close()
    return {"wall_s": t["s"], "promoted": promoted, "expired": expired}


# -- the bench -------------------------------------------------------------------------------


def state(backend, target: str) -> dict:
    """What every contender must leave behind identically."""
    return {
        "pending": backend.scalar(target, "SELECT count(*) FROM pending_memory"),
        "pending_id_sum": int(backend.scalar(target, "SELECT coalesce(sum(id), 0) FROM pending_memory")),
        "long_term": backend.scalar(target, "SELECT count(*) FROM long_term_memory"),
        "source_id_sum": int(backend.scalar(target, "SELECT coalesce(sum(source_pending_id), 0) FROM long_term_memory")),
    }


def memtui_promote(backend, db, workdir: Path, name: str) -> tuple[dict, dict]:
    copy = backend.copy(db, name)
    res = common.run_contender(backend, copy, workdir, "bench.common:memtui_job", job="promote",
                               jobs={"promote": {"cap": 0}})
    if res["status"] != "success":
        raise RuntimeError(f"memtui promote ended {res['status']}: {res['error']}")
    res["promoted"], res["expired"] = res["result"]["promoted"], res["result"]["expired"]
    after = state(backend, copy)
    backend.remove(copy)
    return res, after


def contender(backend, target: str, db, workdir: Path, name: str) -> tuple[dict, dict]:
    copy = backend.copy(db, name)
    res = common.run_contender(backend, copy, workdir, target)
    after = state(backend, copy)
    backend.remove(copy)
    return res, after


def run(args, workdir: Path, backend) -> Section:
    rows = max(1000, int(ROWS * args.scale))
    sample = max(100, int(SAMPLE * args.scale))
    factor = rows / sample
    sec = Section(f"promote on {backend.label}: {rows:,} pending memories")
    big = backend.cached("pending", "fill_pending", n=rows, seed=args.seed, order=args.order)
    small = backend.cached("pending", "fill_pending", n=sample, seed=args.seed, order=args.order)
    raw_target = "bench.promote:raw_pg" if backend.name == "postgresql" else "bench.promote:raw"

    runs = {"memtui": [], "raw": []}
    states = {}
    for rep in range(args.repeat):
        sequence = ("memtui", "raw") if rep % 2 == 0 else ("raw", "memtui")
        for who in sequence:
            log(f"promote: {who} on {rows:,} rows (run {rep + 1}/{args.repeat})")
            if who == "memtui":
                res, after = memtui_promote(backend, big, workdir, "promote-memtui")
            else:
                res, after = contender(backend, raw_target, big, workdir, "promote-raw")
            log(f"promote: {who} {res['wall_s']:.2f} s, promoted {res['promoted']:,}, expired {res['expired']:,}")
            runs[who].append(res)
            states.setdefault(who, after)
            if after != states[who]:
                raise RuntimeError(f"{who} left different data on repeat {rep + 1}: {after} vs {states[who]}")

    loops, loop_after = [], None
    for rep in range(args.repeat):
        log(f"promote: per-row ORM loop on {sample:,} rows (run {rep + 1}/{args.repeat})")
        res, after = contender(backend, "bench.promote:per_row", small, workdir, "promote-per-row")
        log(f"promote: per-row {res['wall_s']:.2f} s")
        loops.append(res)
        loop_after = loop_after or after
    log(f"promote: memtui on the same {sample:,} rows")
    small_memtui, small_after = memtui_promote(backend, small, workdir, "promote-memtui-small")

    t_memtui = median([r["wall_s"] for r in runs["memtui"]])
    t_raw = median([r["wall_s"] for r in runs["raw"]])
    t_loop_measured = median([r["wall_s"] for r in loops])
    t_loop = t_loop_measured * factor
    common.SHARED["promote_memtui_s"] = t_memtui
    m0, r0, loop = runs["memtui"][0], runs["raw"][0], loops[0]
    same_states = states["memtui"] == states["raw"]
    same_big = same_states and (m0["promoted"], m0["expired"]) == (r0["promoted"], r0["expired"])
    same_small = loop_after == small_after and \
        (loop["promoted"], loop["expired"]) == (small_memtui["promoted"], small_memtui["expired"])

    rep = f" (median of {args.repeat})" if args.repeat > 1 else ""
    mb = "{:.1f}".format
    sec.line(f"  data: seed {args.seed}, ids in {args.order} order; now = {common.NOW.isoformat()};"
             f" {m0['promoted']:,} promote, {m0['expired']:,} expire, {states['memtui']['pending']:,} stay pending")
    sec.line()
    sec.table(
        ["contender", "rows", "seconds", "promoted", "expired", "MB written", "peak RSS MB"],
        [
            [f"memtui run_job('promote'){rep}", rows, t_memtui, m0["promoted"], m0["expired"],
             mb(m0["written_mb"]), mb(m0["rss_peak_mb"])],
            [f"raw set-based SQL{rep}", rows, t_raw, r0["promoted"], r0["expired"], mb(r0["written_mb"]),
             mb(r0["rss_peak_mb"])],
            [f"per-row ORM loop (x{factor:g} of {sample:,}){rep}", rows, t_loop, round(loop["promoted"] * factor),
             round(loop["expired"] * factor), mb(loop["written_mb"] * factor), mb(loop["rss_peak_mb"])],
            ["  per-row ORM loop, measured", sample, t_loop_measured, loop["promoted"], loop["expired"],
             mb(loop["written_mb"]), mb(loop["rss_peak_mb"])],
            ["  memtui on the same sample", sample, small_memtui["wall_s"], small_memtui["promoted"],
             small_memtui["expired"], mb(small_memtui["written_mb"]), mb(small_memtui["rss_peak_mb"])],
        ],
    )
    sec.line(common.WRITTEN_NOTE[backend.name])
    sec.line()
    job_s = median([r["job_ms"] for r in runs["memtui"]]) / 1000
    sec.line(f"  memtui job time (run record duration_ms): {job_s:.3f} s of {t_memtui:.3f} s in the child"
             " (the rest: Store.open, Engine seeding, run bookkeeping)")
    sec.line(f"  memtui peak RSS {m0['rss_peak_mb']:.1f} MB (ru_maxrss in the child; {m0['rss_imports_mb']:.1f} MB"
             f" after importing memtui; /proc VmHWM {m0['vm_hwm_mb']:.1f} MB)")
    if args.repeat > 1:
        sec.line("  all runs (s): " + "; ".join(
            f"{who} " + ", ".join(f"{r['wall_s']:.2f}" for r in rs)
            for who, rs in (("memtui", runs["memtui"]), ("raw", runs["raw"]), ("per-row sample", loops))))
    sec.check("same result, memtui vs raw SQL", same_big,
              f"promoted {m0['promoted']:,} vs {r0['promoted']:,}, expired {m0['expired']:,} vs {r0['expired']:,},"
              f" remaining rows and moved ids {'identical' if same_states else 'DIFFER'}")
    sec.check(f"same result, per-row loop vs memtui on {sample:,} rows", same_small,
              f"promoted {loop['promoted']:,} vs {small_memtui['promoted']:,}, expired {loop['expired']:,} vs "
              f"{small_memtui['expired']:,}, remaining rows and moved ids "
              f"{'identical' if loop_after == small_after else 'DIFFER'}")
    sec.check("memtui / raw <= 1.5x", t_memtui / t_raw <= 1.5,
              f"{t_memtui / t_raw:.2f}x ({t_memtui:.2f} s vs {t_raw:.2f} s)")
    sec.check("per-row / memtui >= 50x", t_loop / t_memtui >= 50,
              f"{t_loop / t_memtui:.1f}x ({t_loop:.1f} s extrapolated vs {t_memtui:.2f} s)")
    sec.data = {"rows": rows, "sample": sample, "memtui": runs["memtui"], "raw": runs["raw"], "per_row": loops,
                "memtui_sample": small_memtui, "state": states, "ratio_memtui_raw": t_memtui / t_raw,
                "ratio_per_row_memtui": t_loop / t_memtui}
    return sec
