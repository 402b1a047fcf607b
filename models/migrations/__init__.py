"""Schema migrations, applied in order by peewee's playhouse.migrations runner (see models/db.py)."""
