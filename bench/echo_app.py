"""The baseline for ``ws_load.py``: a bare flask-sock app that sends every
frame straight back, run under the same gunicorn settings as flaskpush.

Whatever flaskpush's throughput falls short of this is flaskpush's own cost
(session checks, validation, the database), not gunicorn's or flask-sock's.
"""
from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@app.get("/")
def index():
    return "echo"


@sock.route("/ws")
def echo(ws):
    while True:
        ws.send(ws.receive())
