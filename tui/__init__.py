"""memtui's user-facing edge: the command line (cli.py) and the Textual dashboard (app.py).

Nothing here is imported by ``engine`` or ``models``; Textual loads only when the dashboard opens.
"""
