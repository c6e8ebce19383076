"""The server's rules: organizations, users, devices, registration, archives, reports.

Functions here take a SQLAlchemy ``Session`` (inside a transaction the caller
opened with ``Database.read``/``write``) or the ``Database`` itself when they
must run several transactions around slow work (password hashing, storage).
They raise only ``server.errors`` errors; nothing here knows about HTTP.
"""
