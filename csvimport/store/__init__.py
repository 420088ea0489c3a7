"""The database layer: SQLAlchemy models, sessions, org files, bulk snapshots, orders, jobs.

Import the submodules directly (``from csvimport.store.db import connect``); this package
keeps no state of its own.
"""
