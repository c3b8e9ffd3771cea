"""The catalog: SQLAlchemy 2 models, the database engine and the custody log."""
