"""0.7: a soft delete no longer writes an index entry at a random place.

Decay's soft delete sets ``retire_at`` NULL (the memory no longer retires). The
index on ``retire_at`` held the NULLs too, ordered by id: each soft delete moved
its memory's entry from among the due ones (all together at the low end of the
index, a few pages for a whole run) to a random page of the NULL part, one page
written per memory (at 10 M memories about a third of an incremental decay
run's pages). The index now holds only the memories that can retire
(``WHERE retire_at IS NOT NULL``: decay's range scan and the memory view's
first pages read nothing else), and the pinned ones, which the memory view lists
after them, have an index of their own (``WHERE pinned``: pinning is rare, and a
soft delete never touches a pinned memory). The faded and forgotten memories
are listed from the index on ``deleted_at``, the merged and replaced ones from
the index on ``superseded_by``.
"""


def up(migrator, db):
    db.execute_sql("DROP INDEX long_term_memory_retire")
    db.execute_sql("CREATE INDEX long_term_memory_retire ON long_term_memory (retire_at) WHERE retire_at IS NOT NULL")
    db.execute_sql("CREATE INDEX long_term_memory_pinned ON long_term_memory (id) WHERE pinned")
