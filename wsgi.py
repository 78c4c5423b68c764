"""WSGI entry point: ``flask --app wsgi run`` or ``gunicorn -k gthread --threads 32 wsgi:app``."""
from flaskpush import create_app

app = create_app()
