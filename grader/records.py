"""The judge's record of every run, kept in nbgrader's own database (``db_url``).

One row per judged notebook: the seed the inputs came from (so a regrade reproduces them),
the sandbox mode, the score and every check's outcome with its diagnosed mistakes (which the
``report`` command aggregates). Works on SQLite and PostgreSQL alike through SQLAlchemy.
"""
import datetime
import json
import time

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text, create_engine, desc, select
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


def _engine(db_url):
    return create_engine(db_url)


def _retrying(action, attempts=8):
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as error:
            # SQLite is locked while another grader writes; two first writers race to create the table.
            transient = "locked" in str(error) or "already exists" in str(error)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(0.25 * 2**attempt)


def save(db_url, assignment, student, notebook, verdict):
    engine = _engine(db_url)

    def write():
        metadata.create_all(engine, checkfirst=True)
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
        metadata.create_all(engine, checkfirst=True)
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
