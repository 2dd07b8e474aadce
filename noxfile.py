"""Test matrix: Python 3.11-3.13 x Django 5.2 / 6.0 / 6.1 x SQLite / PostgreSQL / MariaDB.

With pyenv: ``PYENV_VERSION=3.11.7:3.12.1:3.13.0 nox -s tests``. A cell is
selected by its id, e.g. ``nox -s "tests-3.13(django='6.1', db='postgres')"``.
pytest's "no tests collected" (exit 5) fails the session like any other error.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

DJANGO = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1", "6.1": "Django>=6.1,<6.2"}
EXTRAS = {"sqlite": "test", "postgres": "test,postgres", "mariadb": "test,mariadb"}
MATRIX = [
    (python, django, db)
    for python in ("3.11", "3.12", "3.13")
    for django in DJANGO
    for db in EXTRAS
    if not (python == "3.11" and django != "5.2")  # Django 6.x needs Python 3.12+
]


@nox.session
@nox.parametrize(("python", "django", "db"), MATRIX)
def tests(session: nox.Session, django: str, db: str) -> None:
    """One cell of the matrix, in its own virtualenv."""
    session.install("-e", f".[{EXTRAS[db]}]", DJANGO[django])
    session.run("python", "-m", "pytest", *session.posargs, env={"AUDIT_TEST_DB": db})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict."""
    session.install("-e", ".[test,lint,postgres]")
    session.run("ruff", "check", "src", "tests", "benchmarks", "example", "dev.py", "noxfile.py")
    session.run("mypy")
