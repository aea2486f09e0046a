"""The baseline: a bare Flask endpoint answering like our Twilio webhook, doing nothing else."""

from flask import Flask, Response

app = Flask(__name__)


@app.post("/webhooks/twilio")
def twilio() -> Response:
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response></Response>', mimetype="text/xml")
