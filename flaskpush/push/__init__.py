"""Web Push: the socket commands, subscription storage and delivery."""
from flask import Blueprint

from .handlers import commands

bp = Blueprint("push", __name__)
commands.register_with(bp)
