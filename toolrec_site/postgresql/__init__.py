"""Django's PostgreSQL backend, with one addition (base.py): a request past its database
deadline does not start a new connection."""
