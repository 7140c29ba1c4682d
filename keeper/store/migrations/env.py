"""Alembic environment: the keeper runs migrations on a connection it already holds (inside its
write transaction), see keeper.store.migrate."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
