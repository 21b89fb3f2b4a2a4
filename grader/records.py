"""The judge's record of every run, kept in nbgrader's own database (``db_url``).

One row per judged notebook: the seed the inputs came from (so a regrade reproduces them),
the sandbox mode, the score and every check's outcome with its diagnosed mistakes (which the
``report`` command aggregates). Works on SQLite and PostgreSQL alike through SQLAlchemy.
"""
import datetime
import json
import time
import zlib

from sqlalchemy import (Column, DateTime, Float, Integer, MetaData, String, Table, Text, create_engine, desc, func, inspect,
                        select, text)
from sqlalchemy.exc import OperationalError

metadata = MetaData()
judgements = Table(
    "backprop_lab_judgement", metadata,
    Column("id", Integer, primary_key=True),
    Column("assignment", String(128), nullable=False, index=True),
    Column("student", String(128), nullable=False, index=True),
    Column("notebook", String(128), nullable=False),
    Column("seed", String(32), nullable=False),
    Column("sandbox", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("max_score", Float, nullable=False),
    Column("checks", Text, nullable=False),
    Column("notes", Text, nullable=False, default="[]"),
    Column("created", DateTime, nullable=False),
)


# PostgreSQL advisory lock key under which the table is created (any fixed 64-bit number of our own).
SCHEMA_LOCK = zlib.crc32(b"backprop_lab_judgement schema")


def _engine(db_url):
    return create_engine(db_url)


def ensure_schema(db_url):
    """Create the records table if it is missing; safe when several graders do it at once.

    ``backprop-lab autograde`` calls it before its workers start; every write and read calls it
    too, for the stock ``nbgrader autograde`` and a database that is new.
    """
    engine = _engine(db_url)
    try:
        _ensure_table(engine)
    finally:
        engine.dispose()


def _ensure_table(engine):
    _retrying(lambda: _create_table(engine))


def _create_table(engine):
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two sessions that both find the table missing both run CREATE TABLE, and one fails
            # (DuplicateTable, or a unique violation in pg_type). Held to the end of this
            # transaction, the lock makes the second one wait and then find the table.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        metadata.create_all(connection, checkfirst=True)


def _retrying(action, attempts=8):
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as error:
            # SQLite is locked while another grader writes; two first writers race to create the table
            # (on PostgreSQL the advisory lock of _create_table orders them instead).
            transient = "locked" in str(error) or "already exists" in str(error)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(0.25 * 2**attempt)


def save(db_url, assignment, student, notebook, verdict):
    engine = _engine(db_url)

    def write():
        _create_table(engine)
        with engine.begin() as connection:
            connection.execute(judgements.insert().values(
                assignment=assignment, student=student, notebook=notebook, seed=str(verdict.seed),
                sandbox=verdict.sandbox, score=verdict.score, max_score=verdict.max_score,
                checks=json.dumps(verdict.as_record()), notes=json.dumps(verdict.notes),
                created=datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)))
    try:
        _retrying(write)
    finally:
        engine.dispose()


def latest(db_url, assignment=None, student=None, notebook=None):
    """The newest record per (assignment, student, notebook), filtered; a list of dicts."""
    engine = _engine(db_url)
    try:
        _ensure_table(engine)
        query = select(judgements).order_by(desc(judgements.c.id))
        for column, value in (("assignment", assignment), ("student", student), ("notebook", notebook)):
            if value is not None:
                query = query.where(judgements.c[column] == value)
        seen, rows = set(), []
        with engine.connect() as connection:
            for row in connection.execute(query).mappings():
                key = (row["assignment"], row["student"], row["notebook"])
                if key not in seen:
                    seen.add(key)
                    rows.append(dict(row, checks=json.loads(row["checks"]), notes=json.loads(row["notes"])))
        return rows
    finally:
        engine.dispose()


def recorded_seed(db_url, assignment, student, notebook):
    rows = latest(db_url, assignment, student, notebook)
    return int(rows[0]["seed"]) if rows else None


def last_id(db_url, assignment, student):
    """The id of the newest record of a submission (0 if none): the mark :func:`discard_after` goes back to."""
    engine = _engine(db_url)
    try:
        query = select(func.max(judgements.c.id)).where(judgements.c.assignment == assignment,
                                                        judgements.c.student == student)
        with engine.connect() as connection:
            if not inspect(connection).has_table(judgements.name):  # taking the mark creates nothing
                return 0
            return connection.execute(query).scalar() or 0
    finally:
        engine.dispose()


def discard_after(db_url, assignment, student, mark):
    """Delete a submission's records newer than ``mark`` (those of a run that must leave no trace)."""
    engine = _engine(db_url)

    def delete():
        with engine.begin() as connection:
            if not inspect(connection).has_table(judgements.name):
                return
            connection.execute(judgements.delete().where(judgements.c.assignment == assignment,
                                                         judgements.c.student == student, judgements.c.id > mark))
    try:
        _retrying(delete)
    finally:
        engine.dispose()
